// Validates a kustomization offline: every document against the Kubernetes
// API schema of its apiVersion/kind (strict: unknown fields fail), then
// Treaty's own rules (treaty_rules.mjs).
//   usage: node validate_manifests.mjs DIR [RENDERED.yaml]
// DIR holds kustomization.yaml; it is rendered by render.mjs. With
// RENDERED.yaml (e.g. the output of `kubectl kustomize`), that rendering is
// checked instead. Prints each problem; exits 1 if there is any.

import fs from 'node:fs';

import {parseYamlDocuments, renderKustomization} from './render.mjs';
import {checkAgainstSchema} from './schema_check.mjs';
import {checkTreatyRules} from './treaty_rules.mjs';

// All problems of the documents [{source, obj}], as strings.
export async function validateDocuments(docs) {
  const problems = [];
  for (const {source, obj} of docs) {
    for (const p of await checkAgainstSchema(obj)) problems.push(`${source}: ${p}`);
  }
  if (problems.length > 0) return problems;  // the rules assume well-formed objects
  return checkTreatyRules(docs.map((d) => d.obj), parseYamlDocuments);
}

export async function validateKustomization(dir) {
  return validateDocuments(renderKustomization(dir));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [dir, rendered] = process.argv.slice(2);
  if (!dir) {
    console.error('usage: node validate_manifests.mjs DIR [RENDERED.yaml]');
    process.exit(2);
  }
  const docs = rendered ? parseYamlDocuments(fs.readFileSync(rendered, 'utf8'), rendered)
                              .map((obj) => ({source: rendered, obj})) :
                          renderKustomization(dir);
  const problems = await validateDocuments(docs);
  for (const p of problems) console.log(p);
  console.log(`${docs.length} documents, ${problems.length} problems`);
  process.exit(problems.length > 0 ? 1 : 0);
}
