// Treaty's own rules for its Kubernetes manifests, beyond the API schema:
// the things that make a coordinator deployment keep the product's promises
// (never hang silently, never lose an acknowledged transaction) and that no
// schema can know. Each rule returns problems that name the object and what
// to fix; checkTreatyRules(objects) runs them all.

const kHttpPort = 7480;
const kThriftPort = 7481;
const kDefaultDrainMs = 10000;   // treatyd --drain-timeout-ms default
const kShutdownMarginMs = 5000;  // hand-back, last log writes, exit

function find(objects, kind, name) {
  return objects.find((o) => o.kind === kind && o.metadata?.name === name) ?? null;
}

// Does a label selector {matchLabels, matchExpressions(In only)} select `labels`?
function selects(selector, labels) {
  if (!selector) return false;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    if (labels?.[k] !== v) return false;
  }
  for (const e of selector.matchExpressions ?? []) {
    if (e.operator !== 'In' || !e.values.includes(labels?.[e.key])) return false;
  }
  return Object.keys(selector.matchLabels ?? {}).length + (selector.matchExpressions ?? []).length >
      0;
}

function allContainers(podSpec) {
  return [...(podSpec.initContainers ?? []), ...(podSpec.containers ?? [])];
}

// The container port a probe or Service targetPort names (number or name).
function resolvePort(container, port) {
  if (typeof port === 'number') return port;
  return (container.ports ?? []).find((p) => p.name === port)?.containerPort ?? null;
}

// The value a container sees for environment variable `name`: an explicit
// env value wins over envFrom ConfigMaps (later envFrom entries win).
function envValue(container, objects, name) {
  const explicit = (container.env ?? []).find((e) => e.name === name);
  if (explicit) return explicit.value ?? (explicit.valueFrom ? '(from a reference)' : '');
  let value;
  for (const from of container.envFrom ?? []) {
    const cm = from.configMapRef && find(objects, 'ConfigMap', from.configMapRef.name);
    if (cm && (from.prefix ?? '') === '' && name in (cm.data ?? {})) value = cm.data[name];
  }
  return value;
}

function podWorkloads(objects) {
  return objects.filter((o) => ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(o.kind));
}

// Every ConfigMap/Secret (and key) a pod references exists among `objects`
// (unless marked optional), so no pod waits forever in CreateContainerConfigError.
export function checkReferences(objects) {
  const problems = [];
  for (const w of podWorkloads(objects)) {
    const label = `${w.kind} ${w.metadata.name}`;
    const spec = w.spec.template.spec;
    const need = (kind, name, key, optional, where) => {
      if (optional) return;
      const target = find(objects, kind, name);
      if (!target) {
        problems.push(
            `${label}: ${where} names ${kind} '${name}', which is not in the kustomization`);
        return;
      }
      if (key === undefined) return;
      const keys = {...(target.data ?? {}), ...(target.stringData ?? {})};
      if (!(key in keys)) {
        problems.push(
            `${label}: ${where} needs key '${key}' of ${kind} '${name}', which has ` +
            `only ${Object.keys(keys).join(', ') || 'no keys'}`);
      }
    };
    for (const c of allContainers(spec)) {
      for (const e of c.env ?? []) {
        const cm = e.valueFrom?.configMapKeyRef;
        const sec = e.valueFrom?.secretKeyRef;
        if (cm)
          need('ConfigMap', cm.name, cm.key, cm.optional, `container ${c.name} env ${e.name}`);
        if (sec)
          need('Secret', sec.name, sec.key, sec.optional, `container ${c.name} env ${e.name}`);
      }
      for (const f of c.envFrom ?? []) {
        if (f.configMapRef)
          need(
              'ConfigMap', f.configMapRef.name, undefined, f.configMapRef.optional,
              `container ${c.name} envFrom`);
        if (f.secretRef)
          need(
              'Secret', f.secretRef.name, undefined, f.secretRef.optional,
              `container ${c.name} envFrom`);
      }
    }
    for (const v of spec.volumes ?? []) {
      const src = v.configMap ? ['ConfigMap', v.configMap.name, v.configMap] :
          v.secret            ? ['Secret', v.secret.secretName, v.secret] :
                                null;
      if (!src) continue;
      const [kind, name, ref] = src;
      need(kind, name, undefined, ref.optional, `volume ${v.name}`);
      for (const item of ref.items ?? [])
        need(kind, name, item.key, ref.optional, `volume ${v.name}`);
    }
    if (spec.serviceAccountName && !find(objects, 'ServiceAccount', spec.serviceAccountName)) {
      problems.push(
          `${label}: serviceAccountName '${spec.serviceAccountName}' is not in the kustomization`);
    }
  }
  return problems;
}

// Every container runs as non-root on a read-only root file system, without
// privilege escalation.
export function checkSecurityContexts(objects) {
  const problems = [];
  for (const w of podWorkloads(objects)) {
    const spec = w.spec.template.spec;
    for (const c of allContainers(spec)) {
      const label = `${w.kind} ${w.metadata.name} container ${c.name}`;
      const sc = c.securityContext ?? {};
      if (!(sc.runAsNonRoot ?? spec.securityContext?.runAsNonRoot))
        problems.push(`${label}: runAsNonRoot is not set`);
      if (sc.readOnlyRootFilesystem !== true)
        problems.push(`${label}: readOnlyRootFilesystem is not true`);
      if (sc.allowPrivilegeEscalation !== false)
        problems.push(`${label}: allowPrivilegeEscalation is not false`);
      if (!c.resources?.requests || !c.resources?.limits?.memory) {
        problems.push(`${label}: resources need requests and a memory limit`);
      }
    }
  }
  return problems;
}

// A Deployment or StatefulSet of 2+ replicas spreads its pods across nodes
// and has a PodDisruptionBudget selecting exactly its pods.
export function checkAvailability(objects) {
  const problems = [];
  const pdbs = objects.filter((o) => o.kind === 'PodDisruptionBudget');
  for (const w of objects.filter((o) => ['Deployment', 'StatefulSet'].includes(o.kind))) {
    const label = `${w.kind} ${w.metadata.name}`;
    const labels = w.spec.template.metadata?.labels ?? {};
    if (!selects(w.spec.selector, labels))
      problems.push(`${label}: spec.selector does not select its own pod template`);
    if ((w.spec.replicas ?? 1) < 2) continue;
    const spec = w.spec.template.spec;
    const spread =
        (spec.topologySpreadConstraints ?? [])
            .some(
                (t) => t.topologyKey === 'kubernetes.io/hostname' &&
                    t.whenUnsatisfiable === 'DoNotSchedule' && selects(t.labelSelector, labels));
    const anti =
        (spec.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [])
            .some(
                (t) =>
                    t.topologyKey === 'kubernetes.io/hostname' && selects(t.labelSelector, labels));
    if (!spread && !anti) {
      problems.push(
          `${label}: no topologySpreadConstraint (DoNotSchedule) or required anti-affinity ` +
          'on kubernetes.io/hostname selects its pods: one node could hold them all');
    }
    const own = pdbs.filter((p) => selects(p.spec.selector, labels));
    if (own.length !== 1) {
      problems.push(
          `${label}: ${own.length} PodDisruptionBudgets select its pods (want exactly 1)`);
      continue;
    }
    const pdb = own[0];
    for (const other of podWorkloads(objects)) {
      if (other !== w && selects(pdb.spec.selector, other.spec.template.metadata?.labels)) {
        problems.push(`PodDisruptionBudget ${pdb.metadata.name}: also selects ${other.kind} ${
            other.metadata.name}`);
      }
    }
    const min = pdb.spec.minAvailable;
    if (typeof min === 'number' && min >= w.spec.replicas) {
      problems.push(`PodDisruptionBudget ${pdb.metadata.name}: minAvailable ${min} of ${
          w.spec.replicas} replicas blocks every eviction`);
    }
  }
  return problems;
}

// Labels set on pods at run time, not in their template: Patroni's role label.
const kRuntimeLabels = new Set(['role']);

// Every Service selects the pods of some workload (labels set at run time
// aside) and targets ports they open.
export function checkServices(objects) {
  const problems = [];
  for (const svc of objects.filter((o) => o.kind === 'Service' && o.spec?.selector)) {
    const label = `Service ${svc.metadata.name}`;
    const selector = {
      matchLabels: Object.fromEntries(
          Object.entries(svc.spec.selector).filter(([k]) => !kRuntimeLabels.has(k)))
    };
    const target =
        podWorkloads(objects).find((w) => selects(selector, w.spec.template.metadata?.labels));
    if (!target) {
      problems.push(`${label}: its selector matches no pod template`);
      continue;
    }
    for (const p of svc.spec.ports ?? []) {
      const tp = p.targetPort ?? p.port;
      const opened = target.spec.template.spec.containers.some(
          (c) => resolvePort(c, tp) !== null &&
              (c.ports ?? []).some((cp) => cp.containerPort === resolvePort(c, tp)));
      if (!opened)
        problems.push(`${label}: port ${p.name ?? p.port} targets ${tp}, which no container of ${
            target.kind} ${target.metadata.name} opens`);
    }
  }
  return problems;
}

// treatyd: probes on /readyz and /healthz of the HTTP port 7480 (HTTPS when
// a certificate is configured), listeners on 7480/7481, every file option
// pointing into a mounted volume that carries that file, the advertised
// address from the pod IP, and a grace period that outlasts preStop plus the
// drain, so a coordinator is never killed halfway through its hand-back.
export function checkTreatyd(objects) {
  const problems = [];
  const deploys = objects.filter(
      (o) => o.kind === 'Deployment' &&
          (o.spec.template.spec.containers ?? []).some((c) => c.name === 'treatyd'));
  if (deploys.length !== 1)
    return [`want exactly one Deployment with a container named treatyd, found ${deploys.length}`];
  const d = deploys[0];
  const spec = d.spec.template.spec;
  const c = spec.containers.find((x) => x.name === 'treatyd');
  const label = `Deployment ${d.metadata.name} container treatyd`;
  const env = (name) => envValue(c, objects, name);

  const http = env('TREATY_HTTP') ?? '127.0.0.1:7480';
  const thrift = env('TREATY_THRIFT') ?? '127.0.0.1:7481';
  if (http !== `0.0.0.0:${kHttpPort}`)
    problems.push(`${label}: TREATY_HTTP is '${http}', want 0.0.0.0:${kHttpPort}`);
  if (thrift !== `0.0.0.0:${kThriftPort}`)
    problems.push(`${label}: TREATY_THRIFT is '${thrift}', want 0.0.0.0:${kThriftPort}`);
  if (!(c.env ?? []).some((e) => e.name === 'TREATY_STORE' && e.valueFrom?.secretKeyRef)) {
    problems.push(
        `${label}: TREATY_STORE must come from a Secret (it carries the database password)`);
  }
  const tls = !!env('TREATY_TLS_CERT');
  const wantScheme = tls ? 'HTTPS' : 'HTTP';
  const probe = (field, path) => {
    const p = c[field];
    if (!p?.httpGet) {
      problems.push(`${label}: ${field} must be an httpGet on ${path}`);
      return;
    }
    if (p.httpGet.path !== path)
      problems.push(`${label}: ${field} probes '${p.httpGet.path}', want ${path}`);
    if (resolvePort(c, p.httpGet.port) !== kHttpPort)
      problems.push(
          `${label}: ${field} probes port ${p.httpGet.port}, want the HTTP port ${kHttpPort}`);
    if ((p.httpGet.scheme ?? 'HTTP') !== wantScheme) {
      problems.push(`${label}: ${field} uses ${p.httpGet.scheme ?? 'HTTP'}, but treatyd serves ${
          wantScheme} (TREATY_TLS_CERT ${tls ? 'set' : 'unset'})`);
    }
  };
  probe('readinessProbe', '/readyz');
  probe('livenessProbe', '/healthz');
  if (c.startupProbe) probe('startupProbe', '/healthz');

  // Files named by options must be mounted, with the named file among the
  // volume's items (a missing one stops treatyd at start).
  for (const option
           of ['TREATY_AUTH_TOKENS', 'TREATY_TLS_CERT', 'TREATY_TLS_KEY', 'TREATY_TLS_CLIENT_CA',
               'TREATY_PARTICIPANT_CA', 'TREATY_PARTICIPANT_CERT', 'TREATY_PARTICIPANT_KEY',
               'TREATY_PARTICIPANT_HMAC_KEY']) {
    const file = env(option);
    if (!file) continue;
    const mount =
        (c.volumeMounts ?? []).find((m) => file.startsWith(m.mountPath.replace(/\/?$/, '/')));
    if (!mount) {
      problems.push(`${label}: ${option}=${file} is under no volumeMount`);
      continue;
    }
    const rel = file.slice(mount.mountPath.replace(/\/?$/, '/').length);
    const vol = (spec.volumes ?? []).find((v) => v.name === mount.name);
    const src = vol?.secret ?? vol?.configMap;
    if (!src) continue;
    const source =
        vol.secret ? find(objects, 'Secret', src.secretName) : find(objects, 'ConfigMap', src.name);
    const files = src.items ? src.items.map((i) => i.path) : Object.keys(source?.data ?? {});
    if (!files.includes(rel)) {
      problems.push(`${label}: ${option}=${file}, but volume ${vol.name} has no file '${
          rel}' (it has ${files.join(', ')})`);
    }
  }

  const advertise = (c.env ?? []).find((e) => e.name === 'TREATY_ADVERTISE_HTTP');
  const podIp = (c.env ?? []).find((e) => e.valueFrom?.fieldRef?.fieldPath === 'status.podIP');
  if (!advertise || !podIp || advertise.value !== `$(${podIp.name}):${kHttpPort}`) {
    problems.push(
        `${label}: TREATY_ADVERTISE_HTTP must be $(POD_IP):${kHttpPort}, POD_IP from status.podIP`);
  } else if (c.env.indexOf(podIp) > c.env.indexOf(advertise)) {
    problems.push(`${label}: ${podIp.name} must be defined before TREATY_ADVERTISE_HTTP for $(${
        podIp.name}) to expand`);
  }

  const drainMs = Number(env('TREATY_DRAIN_TIMEOUT_MS') ?? kDefaultDrainMs);
  const sleep = c.lifecycle?.preStop?.exec?.command;
  const preStopMs = sleep?.[0] === 'sleep' ? Number(sleep[1]) * 1000 :
                                             (c.lifecycle?.preStop?.sleep?.seconds ?? 0) * 1000;
  const graceMs = (spec.terminationGracePeriodSeconds ?? 30) * 1000;
  if (graceMs < preStopMs + drainMs + kShutdownMarginMs) {
    problems.push(
        `${label}: terminationGracePeriodSeconds ${graceMs / 1000} s is too short: preStop ` +
        `${preStopMs / 1000} s + drain ${drainMs / 1000} s (TREATY_DRAIN_TIMEOUT_MS) + ` +
        `${kShutdownMarginMs / 1000} s to hand back and exit`);
  }

  const migrate =
      (spec.initContainers ?? []).find((x) => (x.args ?? x.command ?? []).includes('migrate'));
  if (!migrate)
    problems.push(`Deployment ${d.metadata.name}: no init container runs \`treatyd migrate\``);
  else if (migrate.image !== c.image)
    problems.push(`Deployment ${d.metadata.name}: the migrate init container runs ${
        migrate.image}, treatyd ${c.image}: they must be the same release`);
  const ru = d.spec.strategy?.rollingUpdate;
  if (d.spec.strategy?.type === 'Recreate' || ru?.maxUnavailable !== 0) {
    problems.push(`Deployment ${
        d.metadata
            .name}: a rollout must keep every coordinator until its replacement is ready (RollingUpdate, maxUnavailable 0)`);
  }
  return problems;
}

// Patroni: its service account may read and write what its Kubernetes DCS
// keeps (endpoints, pods, configmaps), and the log is synchronously replicated.
export function checkPatroni(objects, parseYaml) {
  const problems = [];
  const sts = objects.find(
      (o) => o.kind === 'StatefulSet' &&
          o.spec.template.spec.containers.some((c) => c.name === 'patroni'));
  if (!sts) return ['no StatefulSet with a container named patroni'];
  const label = `StatefulSet ${sts.metadata.name}`;
  const sa = sts.spec.template.spec.serviceAccountName;
  const bindings = objects.filter(
      (o) => o.kind === 'RoleBinding' &&
          (o.subjects ?? []).some((s) => s.kind === 'ServiceAccount' && s.name === sa));
  const rules = bindings.flatMap((b) => find(objects, 'Role', b.roleRef.name)?.rules ?? []);
  const need = {
    endpoints: ['get', 'list', 'watch', 'create', 'patch', 'update'],
    pods: ['get', 'list', 'watch', 'patch', 'update'],
    configmaps: ['get', 'list', 'watch', 'create', 'patch', 'update']
  };
  for (const [resource, verbs] of Object.entries(need)) {
    for (const verb of verbs) {
      const granted = rules.some(
          (r) => (r.apiGroups ?? []).includes('') && (r.resources ?? []).includes(resource) &&
              (r.verbs ?? []).includes(verb));
      if (!granted)
        problems.push(`${label}: service account '${sa}' may not ${verb} ${
            resource} (Patroni's Kubernetes DCS needs it)`);
    }
  }
  if (!(sts.spec.volumeClaimTemplates ?? []).length)
    problems.push(`${label}: no volumeClaimTemplates: the log would live on ephemeral storage`);
  const cfgVolume = (sts.spec.template.spec.volumes ?? []).find((v) => v.configMap);
  const cm = cfgVolume && find(objects, 'ConfigMap', cfgVolume.configMap.name);
  const text = cm?.data?.['patroni.yml'];
  if (!text) return [...problems, `${label}: no ConfigMap key patroni.yml mounted`];
  const cfg = parseYaml(text, 'patroni.yml')[0];
  const dcs = cfg?.bootstrap?.dcs ?? {};
  if (dcs.synchronous_mode !== true)
    problems.push(`${
        label}: patroni.yml bootstrap.dcs.synchronous_mode must be true (else a fail-over can lose acknowledged commits)`);
  if (cfg?.kubernetes?.use_endpoints !== true)
    problems.push(`${
        label}: patroni.yml kubernetes.use_endpoints must be true (the treaty-pg Service follows the leader)`);
  const leader = find(objects, 'Service', cfg?.scope);
  if (!leader)
    problems.push(`${label}: no Service named after the Patroni scope '${
        cfg?.scope}' (the leader's address)`);
  else if (leader.spec.selector)
    problems.push(
        `Service ${leader.metadata.name}: must have no selector: Patroni writes its Endpoints`);
  return problems;
}

export function checkTreatyRules(objects, parseYaml) {
  return [
    ...checkReferences(objects),
    ...checkSecurityContexts(objects),
    ...checkAvailability(objects),
    ...checkServices(objects),
    ...checkTreatyd(objects),
    ...checkPatroni(objects, parseYaml),
  ];
}
