// Renders a kustomization without kubectl: the subset of kustomize that
// deploy/kubernetes uses or docs/deploy.md suggests (namespace, resources,
// configMapGenerator, secretGenerator, images). Anything else in
// kustomization.yaml is refused by name, so a new kustomize feature cannot
// slip past the checks unrendered.
//
// Differences from `kubectl kustomize`, on purpose: generated ConfigMaps and
// Secrets keep their plain names (no content-hash suffix; kustomize renames
// them and every reference together, so references resolve either way), and
// a generator file that does not exist (the secrets/ files are never
// committed) yields its key with an empty value: the checks need the keys,
// never the secret values.
//
// YAML is read as YAML 1.1, like the Kubernetes API machinery: `0440` is an
// octal file mode, `on` stays a string only when quoted.

import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

const kSupportedFields = new Set([
  'apiVersion',
  'kind',
  'namespace',
  'resources',
  'configMapGenerator',
  'secretGenerator',
  'images',
]);
const kClusterScopedKinds = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'PersistentVolume',
  'StorageClass',
  'CustomResourceDefinition',
  'PriorityClass',
]);

// Every YAML document of `text` as a plain object; throws naming `source`
// and the line on a syntax error.
export function parseYamlDocuments(text, source) {
  const docs = [];
  for (const doc of YAML.parseAllDocuments(text, {version: '1.1', prettyErrors: true})) {
    if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors[0].message}`);
    const value = doc.toJS();
    if (value !== null && value !== undefined) docs.push(value);
  }
  return docs;
}

function readKustomization(dir) {
  const file = path.join(dir, 'kustomization.yaml');
  const [k] = parseYamlDocuments(fs.readFileSync(file, 'utf8'), file);
  if (!k || typeof k !== 'object') throw new Error(`${file}: empty`);
  for (const field of Object.keys(k)) {
    if (!kSupportedFields.has(field)) {
      throw new Error(
          `${file}: field '${field}' is not supported by tests/deploy/render.mjs ` +
          '(extend the renderer and its checks before using it)');
    }
  }
  return k;
}

// "key=path" or "path" (key = file name) -> [key, path]
function splitFileSource(source) {
  const eq = source.indexOf('=');
  return eq < 0 ? [path.basename(source), source] : [source.slice(0, eq), source.slice(eq + 1)];
}

function readIfPresent(file) {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
}

// KEY=VALUE lines (kustomize `envs`); # comments and blank lines skipped.
function parseEnvFile(file) {
  const out = {};
  fs.readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
    const text = line.trim();
    if (text === '' || text.startsWith('#')) return;
    const eq = text.indexOf('=');
    if (eq <= 0) throw new Error(`${file}:${i + 1}: expected KEY=VALUE, got '${text}'`);
    out[text.slice(0, eq)] = text.slice(eq + 1);
  });
  return out;
}

function generate(dir, kind, gen) {
  if (!gen.name) throw new Error(`${kind} generator without a name`);
  const data = {};
  for (const field of Object.keys(gen)) {
    if (!['name', 'files', 'literals', 'envs', 'type'].includes(field)) {
      throw new Error(`${kind} generator '${gen.name}': field '${field}' is not supported`);
    }
  }
  for (const source of gen.files ?? []) {
    const [key, file] = splitFileSource(source);
    data[key] = readIfPresent(path.join(dir, file));
  }
  for (const literal of gen.literals ?? []) {
    const eq = literal.indexOf('=');
    data[literal.slice(0, eq)] = literal.slice(eq + 1);
  }
  for (const file of gen.envs ?? []) Object.assign(data, parseEnvFile(path.join(dir, file)));
  const obj = {apiVersion: 'v1', kind, metadata: {name: gen.name}, data};
  if (kind === 'Secret') {
    obj.type = gen.type ?? 'Opaque';
    obj.data = Object.fromEntries(
        Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
  }
  return obj;
}

// kustomize `images`: a container image whose name (without tag or digest)
// is an entry's `name` gets its newName, newTag or digest.
function setImages(obj, images) {
  const podSpec = obj.spec?.template?.spec;
  if (!podSpec || images.length === 0) return;
  for (const c of [...(podSpec.initContainers ?? []), ...(podSpec.containers ?? [])]) {
    const m = /^([^@]*?)(?::([^:/@]+))?(?:@(.+))?$/.exec(c.image ?? '');
    const entry = m && images.find((i) => i.name === m[1]);
    if (!entry) continue;
    const name = entry.newName ?? m[1];
    if (entry.digest)
      c.image = `${name}@${entry.digest}`;
    else
      c.image = entry.newTag ? `${name}:${entry.newTag}` : name + (m[2] ? `:${m[2]}` : '');
  }
}

// The documents `kubectl apply -k dir` would send, each tagged (not as a
// field of the object) with the file it came from: [{source, obj}].
export function renderKustomization(dir) {
  const k = readKustomization(dir);
  const out = [];
  for (const resource of k.resources ?? []) {
    const file = path.join(dir, resource);
    if (fs.statSync(file).isDirectory()) {
      for (const sub of renderKustomization(file)) out.push(sub);
      continue;
    }
    for (const obj of parseYamlDocuments(fs.readFileSync(file, 'utf8'), resource)) {
      out.push({source: resource, obj});
    }
  }
  for (const gen of k.configMapGenerator ?? []) {
    out.push({source: 'configMapGenerator', obj: generate(dir, 'ConfigMap', gen)});
  }
  for (const gen of k.secretGenerator ?? []) {
    out.push({source: 'secretGenerator', obj: generate(dir, 'Secret', gen)});
  }
  for (const {obj} of out) setImages(obj, k.images ?? []);
  if (k.namespace) {
    for (const {obj} of out) {
      if (kClusterScopedKinds.has(obj.kind) || !obj.metadata) continue;
      obj.metadata.namespace = k.namespace;
      // kustomize also moves the subjects of a RoleBinding into the namespace.
      if (obj.kind === 'RoleBinding') {
        for (const s of obj.subjects ?? []) {
          if (s.kind === 'ServiceAccount') s.namespace = k.namespace;
        }
      }
    }
  }
  return out;
}
