// Deny rules read from Rego sources, and reasons matched back to them: literal reasons,
// sprintf formats (also split over lines), reasons built in the body, the older deny[msg]
// form, comments and test files ignored, the most specific template winning.
import t from 'tap';
import { createRuleMatcher, extractDenyRules } from '../../src/audit/policy-rules.ts';

const SOURCES = new Map([
  [
    '/policies/a.rego',
    `package tollgate.authz

# deny contains "a comment is not a rule"
deny contains "no agent" if not input.agent.id

deny contains sprintf(
	"refund of %v exceeds the %s limit of %v",
	[amount, role, limit],
) if { true }

deny contains msg if {
	input.x
	msg := sprintf("path %s is odd", [input.path])
}

deny contains dynamic if {
	dynamic := concat(" ", ["built", "at", "runtime"])
}
`,
  ],
  ['/policies/b.rego', 'package tollgate.authz\n\ndeny["refund of everything is refused"] if input.all\n'],
  ['/policies/a_test.rego', 'package tollgate.authz_test\n\ndeny contains "from a test" if true\n'],
]);

t.test('extracts each deny rule with its file, line and reason template', async (t) => {
  const rules = extractDenyRules(SOURCES);
  t.same(
    rules.map((r) => [r.id, r.template]),
    [
      ['policies/a.rego:4', 'no agent'],
      ['policies/a.rego:6', 'refund of %v exceeds the %s limit of %v'],
      ['policies/a.rego:11', 'path %s is odd'],
      ['policies/a.rego:16', undefined],
      ['policies/b.rego:3', 'refund of everything is refused'],
    ],
  );
});

t.test('matches a reason to the most specific template it fits', async (t) => {
  const matcher = createRuleMatcher(extractDenyRules(SOURCES));
  t.equal(matcher.match('refund of 600 exceeds the support limit of 500')?.id, 'policies/a.rego:6');
  t.equal(matcher.match('refund of everything is refused')?.id, 'policies/b.rego:3');
  t.equal(matcher.match('path /a/../b is odd')?.id, 'policies/a.rego:11');
  t.equal(matcher.match('no agent')?.id, 'policies/a.rego:4');
  t.equal(matcher.match('built at runtime'), undefined, 'a reason built at runtime matches no template');
  t.equal(matcher.match('no agent at all'), undefined, 'templates are anchored');
});
