// Checks one Kubernetes object against the API schema of its
// apiVersion/kind, offline:
//  - kubernetes-models: the Kubernetes OpenAPI schemas compiled to JSON
//    Schema validators (required fields, types, enums, formats such as
//    int-or-string and quantities);
//  - strict fields: the OpenAPI schemas allow unknown properties (the API
//    server drops or refuses them depending on its field validation), so a
//    misspelled field such as `readinesProbe` would pass the schema and be
//    silently ignored. Every field is therefore also looked up in
//    @kubernetes/client-node's field tables (generated from the same
//    OpenAPI specification), as `kubectl --validate=strict` would.
// Returns a list of problems, each naming the path in the object; empty when
// the object is valid.

import {createRequire} from 'node:module';

const require = createRequire(import.meta.url);
const models = await import('@kubernetes/client-node/dist/gen/models/ObjectSerializer.js');

// "apps/v1" -> {group: "apps", version: "v1"}; "v1" -> {group: "", version: "v1"}
function splitApiVersion(apiVersion) {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? {group: '', version: apiVersion} :
                     {group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1)};
}

const kSchemaCache = new Map();

async function schemaModel(apiVersion, kind) {
  const key = `${apiVersion}/${kind}`;
  if (!kSchemaCache.has(key)) {
    const {group, version} = splitApiVersion(apiVersion);
    const modulePath = `kubernetes-models/${group === '' ? '' : group + '/'}${version}/${kind}`;
    let model = null;
    try {
      model = (await import(modulePath))[kind] ?? null;
    } catch (e) {
      if (e.code !== 'ERR_PACKAGE_PATH_NOT_EXPORTED' && e.code !== 'ERR_MODULE_NOT_FOUND') throw e;
    }
    kSchemaCache.set(key, model);
  }
  return kSchemaCache.get(key);
}

// The client-node class describing apiVersion/kind: V1Deployment for apps/v1
// Deployment, or a group-prefixed one (RbacV1Subject) where names collide.
function fieldTableClass(apiVersion, kind) {
  const {group, version} = splitApiVersion(apiVersion);
  const v = version.charAt(0).toUpperCase() + version.slice(1);
  const groupWord = group.split('.')[0];
  const prefixed = groupWord.charAt(0).toUpperCase() + groupWord.slice(1) + v + kind;
  return models[v + kind] ?? models[prefixed] ?? null;
}

const kScalarTypes =
    new Set(['string', 'number', 'boolean', 'Date', 'any', 'object', 'IntOrString']);

function typeProblem(value, type, where) {
  const actual = Array.isArray(value) ? 'array' : typeof value;
  const ok = {
    string: actual === 'string',
    number: actual === 'number',
    boolean: actual === 'boolean',
    Date: actual === 'string',
    IntOrString: actual === 'string' || actual === 'number',
    any: true,
    object: actual === 'object',
  }[type];
  return ok ? null : `${where}: expected ${type}, got ${actual}`;
}

// Walks `value` as client-node type `type`, collecting unknown fields and
// gross type mismatches into `problems`.
function walk(value, type, where, problems) {
  if (value === null || value === undefined) return;
  let m;
  if ((m = /^Array<(.+)>$/.exec(type))) {
    if (!Array.isArray(value)) {
      problems.push(`${where}: expected a list`);
      return;
    }
    value.forEach((item, i) => walk(item, m[1], `${where}[${i}]`, problems));
    return;
  }
  if ((m = /^\{ \[key: string\]: (.+); \}$/.exec(type))) {
    if (typeof value !== 'object' || Array.isArray(value)) {
      problems.push(`${where}: expected a map`);
      return;
    }
    for (const [k, v] of Object.entries(value)) walk(v, m[1], `${where}.${k}`, problems);
    return;
  }
  if (kScalarTypes.has(type)) {
    const p = typeProblem(value, type, where);
    if (p) problems.push(p);
    return;
  }
  const cls = models[type];
  if (!cls || !cls.attributeTypeMap) {
    problems.push(`${where}: no field table for type ${type} (tests/deploy/schema_check.mjs)`);
    return;
  }
  if (typeof value !== 'object' || Array.isArray(value)) {
    problems.push(`${where}: expected an object (${type})`);
    return;
  }
  const fields = new Map(cls.attributeTypeMap.map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    if (!fields.has(k)) {
      problems.push(`${where}.${k}: unknown field (not in ${type}; misspelled?)`);
      continue;
    }
    walk(v, fields.get(k), `${where}.${k}`, problems);
  }
}

// Problems of `obj` against the schema of its apiVersion/kind (strict).
export async function checkAgainstSchema(obj) {
  const {apiVersion, kind} = obj ?? {};
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') {
    return ['the document has no apiVersion/kind'];
  }
  const name = obj.metadata?.name ?? '(no name)';
  const label = `${kind} ${name}`;
  const model = await schemaModel(apiVersion, kind);
  const cls = fieldTableClass(apiVersion, kind);
  if (!model || !cls) return [`${label}: no schema for apiVersion ${apiVersion}, kind ${kind}`];
  const problems = [];
  try {
    new model(obj).validate();
  } catch (e) {
    for (const line of String(e.message).split('\n')) problems.push(`${label}: ${line}`);
  }
  const strict = [];
  walk(obj, cls.name, kind, strict);
  for (const p of strict) problems.push(`${label}: ${p}`);
  return problems;
}

export const schemaVersions = {
  kubernetesModels: require('kubernetes-models/package.json').version,
  clientNode: require('@kubernetes/client-node/package.json').version,
};
