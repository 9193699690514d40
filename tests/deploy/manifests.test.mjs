// deploy_manifests_test: deploy/kubernetes passes the Kubernetes API schemas
// (strict) and Treaty's rules, rendered by render.mjs and, where kubectl is
// installed, by `kubectl kustomize`; and each kind of mistake the checks
// exist for is caught in a broken copy (negative tests).
//   usage: node --test manifests.test.mjs   (DEPLOY_DIR: the kustomization)

import assert from 'node:assert/strict';
import {execFileSync, spawnSync} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';

import {parseYamlDocuments, renderKustomization} from './render.mjs';
import {schemaVersions} from './schema_check.mjs';
import {validateDocuments, validateKustomization} from './validate_manifests.mjs';

const kDeployDir = process.env.DEPLOY_DIR;
assert.ok(
    kDeployDir && fs.existsSync(path.join(kDeployDir, 'kustomization.yaml')),
    'DEPLOY_DIR must name deploy/kubernetes');
console.log(
    `schemas: kubernetes-models ${schemaVersions.kubernetesModels}, ` +
    `@kubernetes/client-node ${schemaVersions.clientNode}`);

// A copy of the kustomization in a temporary folder, with `edits` applied:
// [file, from, to] replaces the first `from` (which must be there, so that a
// test cannot pass by editing nothing).
function brokenCopy(edits) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'treaty-deploy-'));
  fs.cpSync(kDeployDir, dir, {recursive: true});
  for (const [file, from, to] of edits) {
    const p = path.join(dir, file);
    const text = fs.readFileSync(p, 'utf8');
    assert.ok(text.includes(from), `${file} does not contain '${from}'`);
    fs.writeFileSync(p, text.replace(from, to));
  }
  return dir;
}

async function problemsOf(edits) {
  const dir = brokenCopy(edits);
  try {
    return await validateKustomization(dir);
  } finally {
    fs.rmSync(dir, {recursive: true, force: true});
  }
}

async function assertCaught(edits, pattern) {
  const problems = await problemsOf(edits);
  assert.ok(
      problems.some((p) => pattern.test(p)),
      `expected a problem matching ${pattern}, got:\n${problems.join('\n') || '(none)'}`);
}

test('deploy/kubernetes renders and passes the schemas and the rules', async () => {
  const docs = renderKustomization(kDeployDir);
  const kinds = docs.map((d) => d.obj.kind).sort();
  for (const kind
           of ['Deployment', 'StatefulSet', 'PodDisruptionBudget', 'Service', 'Role', 'RoleBinding',
               'ServiceAccount', 'ConfigMap', 'Secret']) {
    assert.ok(kinds.includes(kind), `no ${kind} rendered (got ${kinds.join(', ')})`);
  }
  assert.deepEqual(await validateDocuments(docs), []);
});

test('kubectl kustomize renders the same set, and it passes too', async (t) => {
  const kubectl = spawnSync('kubectl', ['version', '--client'], {encoding: 'utf8'});
  if (kubectl.error) {
    t.skip('kubectl is not installed (not a Debian package); render.mjs alone was checked');
    return;
  }
  // kustomize v4+ (kubectl 1.21+): older ones lack configMapGenerator `envs`.
  const kustomize = /Kustomize Version: v(\d+)/.exec(kubectl.stdout);
  if (!kustomize || Number(kustomize[1]) < 4) {
    t.skip(`kubectl's kustomize is older than v4 (${
        kubectl.stdout.trim()}); render.mjs alone was checked`);
    return;
  }
  // kustomize reads the secret files: give it stand-ins.
  const dir = brokenCopy([]);
  try {
    const k =
        parseYamlDocuments(fs.readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8'), 'k')[0];
    for (const gen of k.secretGenerator ?? []) {
      for (const source of gen.files) {
        const file = path.join(dir, source.slice(source.indexOf('=') + 1));
        if (!fs.existsSync(file)) fs.writeFileSync(file, 'stand-in\n');
      }
    }
    const out = execFileSync('kubectl', ['kustomize', dir], {encoding: 'utf8'});
    const rendered = parseYamlDocuments(out, 'kubectl kustomize');
    const key = (o) => `${o.kind}/${o.metadata.name.replace(/-[a-z0-9]{10}$/, '')}`;
    const ours = renderKustomization(kDeployDir).map((d) => key(d.obj)).sort();
    assert.deepEqual(rendered.map(key).sort(), ours);
    const problems = await validateDocuments(rendered.map((obj) => ({source: 'kubectl', obj})));
    assert.deepEqual(problems, []);
  } finally {
    fs.rmSync(dir, {recursive: true, force: true});
  }
});

test('a misspelled field is refused (strict schema)', async () => {
  await assertCaught(
      [['treatyd-deployment.yaml', 'readinessProbe:', 'readinesProbe:']],
      /containers\[0\]\.readinesProbe: unknown field/);
  await assertCaught(
      [['postgres-statefulset.yaml', 'volumeClaimTemplates:', 'volumeClaimTemplate:']],
      /spec\.volumeClaimTemplate: unknown field/);
});

test('a missing required field or a wrong type is refused (schema)', async () => {
  await assertCaught(
      [['treatyd-service.yaml', '- name: thrift\n      port: 7481', '- name: thrift']],
      /must have required property 'port'|must have required property port/);
  await assertCaught(
      [['treatyd-deployment.yaml', 'replicas: 3', 'replicas: three']], /replicas must be integer/);
  await assertCaught(
      [['treatyd-pdb.yaml', 'apiVersion: policy/v1', 'apiVersion: policy/v1beta7']],
      /no schema for apiVersion policy\/v1beta7/);
});

test('probes on the wrong path, port or scheme are refused', async () => {
  await assertCaught(
      [['treatyd-deployment.yaml', 'path: /readyz', 'path: /healthz']],
      /readinessProbe probes '\/healthz', want \/readyz/);
  await assertCaught(
      [[
        'treatyd-deployment.yaml',
        'path: /healthz\n              port: http\n              scheme: HTTPS\n            periodSeconds: 10',
        'path: /healthz\n              port: 7481\n              scheme: HTTPS\n            periodSeconds: 10'
      ]],
      /livenessProbe probes port 7481, want the HTTP port 7480/);
  await assertCaught(
      [[
        'treatyd-deployment.yaml',
        'path: /readyz\n              port: http\n              scheme: HTTPS',
        'path: /readyz\n              port: http\n              scheme: HTTP'
      ]],
      /readinessProbe uses HTTP, but treatyd serves HTTPS/);
});

test('a grace period shorter than preStop + drain + margin is refused', async () => {
  await assertCaught(
      [[
        'treatyd-deployment.yaml', 'terminationGracePeriodSeconds: 45',
        'terminationGracePeriodSeconds: 25'
      ]],
      /terminationGracePeriodSeconds 25 s is too short: preStop 5 s \+ drain 20 s/);
  await assertCaught(
      [['treatyd.env', 'TREATY_DRAIN_TIMEOUT_MS=20000', 'TREATY_DRAIN_TIMEOUT_MS=40000']],
      /terminationGracePeriodSeconds 45 s is too short: preStop 5 s \+ drain 40 s/);
});

test('a PodDisruptionBudget that misses the coordinators is refused', async () => {
  await assertCaught(
      [[
        'treatyd-pdb.yaml', 'app.kubernetes.io/component: coordinator',
        'app.kubernetes.io/component: coordinators'
      ]],
      /Deployment treatyd: 0 PodDisruptionBudgets select its pods/);
  await assertCaught(
      [['treatyd-pdb.yaml', 'minAvailable: 2', 'minAvailable: 3']],
      /minAvailable 3 of 3 replicas blocks every eviction/);
});

test('a reference to a missing ConfigMap/Secret key or file is refused', async () => {
  await assertCaught(
      [['kustomization.yaml', '      - store-uri=secrets/store-uri\n', '']],
      /needs key 'store-uri' of Secret 'treatyd-secrets'/);
  await assertCaught(
      [['postgres-statefulset.yaml', 'key: treaty-password', 'key: treaty-pasword']],
      /needs key 'treaty-pasword' of Secret 'treaty-pg-secrets'/);
  await assertCaught(
      [[
        'treatyd.env', 'TREATY_TLS_KEY=/etc/treaty/secrets/tls.key',
        'TREATY_TLS_KEY=/etc/treaty/tls.key'
      ]],
      /TREATY_TLS_KEY=\/etc\/treaty\/tls.key is under no volumeMount/);
  await assertCaught(
      [[
        'treatyd-deployment.yaml',
        '              - key: participant-hmac-key\n                path: participant-hmac-key\n',
        ''
      ]],
      /TREATY_PARTICIPANT_HMAC_KEY=.*volume secrets has no file 'participant-hmac-key'/);
});

test('spread, security context, drain-safe rollout and migrations are required', async () => {
  await assertCaught(
      [[
        'treatyd-deployment.yaml', 'whenUnsatisfiable: DoNotSchedule',
        'whenUnsatisfiable: ScheduleAnyway'
      ]],
      /Deployment treatyd: no topologySpreadConstraint/);
  await assertCaught(
      [[
        'treatyd-deployment.yaml',
        'readOnlyRootFilesystem: true\n            capabilities:\n              drop: ["ALL"]\n      volumes',
        'readOnlyRootFilesystem: false\n            capabilities:\n              drop: ["ALL"]\n      volumes'
      ]],
      /container treatyd: readOnlyRootFilesystem is not true/);
  await assertCaught(
      [['treatyd-deployment.yaml', 'maxUnavailable: 0', 'maxUnavailable: 1']], /maxUnavailable 0/);
  await assertCaught(
      [['treatyd-deployment.yaml', 'args: ["migrate"]', 'args: ["--help"]']],
      /no init container runs `treatyd migrate`/);
  await assertCaught(
      [['treatyd-deployment.yaml', 'value: "$(POD_IP):7480"', 'value: "127.0.0.1:7480"']],
      /TREATY_ADVERTISE_HTTP must be \$\(POD_IP\):7480/);
});

test('Patroni without its rights or without synchronous replication is refused', async () => {
  await assertCaught(
      [['postgres-rbac.yaml', 'resources: ["pods"]', 'resources: ["pod"]']],
      /service account 'treaty-pg' may not get pods/);
  await assertCaught(
      [['postgres/patroni.yml', 'synchronous_mode: true', 'synchronous_mode: false']],
      /synchronous_mode must be true/);
  await assertCaught(
      [[
        'postgres-services.yaml', 'spec:\n  type: ClusterIP\n  ports:',
        'spec:\n  type: ClusterIP\n  selector:\n    cluster-name: treaty-pg\n  ports:'
      ]],
      /Service treaty-pg: must have no selector/);
});

test('a kustomization field the renderer does not know is refused by name', async () => {
  await assert.rejects(
      problemsOf(
          [['kustomization.yaml', 'namespace: treaty', 'namespace: treaty\nnamePrefix: x-']]),
      /field 'namePrefix' is not supported/);
});

test('images (as docs/deploy.md suggests) retag both treatyd containers alike', async () => {
  const images = 'namespace: treaty\nimages:\n  - name: treaty/treatyd\n' +
      '    newName: registry.example/treaty/treatyd\n    newTag: "0.2.0"\n';
  const dir = brokenCopy([['kustomization.yaml', 'namespace: treaty\n', images]]);
  try {
    const docs = renderKustomization(dir);
    const d = docs.find((x) => x.obj.kind === 'Deployment').obj.spec.template.spec;
    assert.equal(d.containers[0].image, 'registry.example/treaty/treatyd:0.2.0');
    assert.equal(d.initContainers[0].image, 'registry.example/treaty/treatyd:0.2.0');
    assert.deepEqual(await validateDocuments(docs), []);
  } finally {
    fs.rmSync(dir, {recursive: true, force: true});
  }
});
