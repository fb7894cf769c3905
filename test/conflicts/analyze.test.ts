/**
 * The pure parts of conflict detection: outcomes of decision values, how disagreements
 * fail under each combining rule, shadowed and unexercised local rules, and inputs
 * generated around the rules' constants.
 */
import t from 'tap';
import { analyze, outcomeOf, type LayerAnswer } from '../../src/conflicts/analyze.ts';
import { generateInputs, withPath } from '../../src/conflicts/corpus.ts';

const a = (outcome: LayerAnswer['outcome'], fired: string[] = [], reasons: string[] = []): LayerAnswer => ({
  outcome,
  reasons,
  fired,
});

t.test('reads booleans, result objects, "applicable": false and undefined decisions', async (t) => {
  t.same(outcomeOf(true), { outcome: 'allow', reasons: [] });
  t.same(outcomeOf({ allowed: false, reasons: ['x'] }), { outcome: 'deny', reasons: ['x'] });
  t.equal(outcomeOf({ applicable: false }).outcome, 'n/a');
  t.equal(outcomeOf(undefined).outcome, 'error');
  t.equal(outcomeOf({ reasons: [] }).outcome, 'error');
});

t.test('a local grant central denies fails; a local restriction fails only under first-applicable', async (t) => {
  const central = [a('deny', [], ['limit 500']), a('allow'), a('allow'), a('n/a')];
  const local = [a('allow', ['l:1']), a('deny', ['l:2'], ['cap 200']), a('n/a'), a('deny')];
  const rules = [
    { id: 'l:1', head: 'decision := … if' },
    { id: 'l:2', head: 'deny contains … if' },
  ];
  const over = analyze({ combine: 'deny-overrides', failOn: 'overridden', central, local, localRules: rules });
  t.match(over.conflicts, [
    { kind: 'local-allows-central-denies', failing: true, count: 1, centralReasons: ['limit 500'] },
    { kind: 'local-denies-central-allows', failing: false, count: 1, localReasons: ['cap 200'] },
  ]);
  t.equal(over.counts.centralNotApplicable, 1);
  const first = analyze({ combine: 'first-applicable', failOn: 'overridden', central, local, localRules: rules });
  t.ok(first.conflicts.every((g) => g.failing));
  const none = analyze({ combine: 'deny-overrides', failOn: 'none', central, local, localRules: rules });
  t.ok(none.conflicts.every((g) => !g.failing));
});

t.test('reasons that differ only in numbers are one conflict group', async (t) => {
  const central = [a('deny', [], ['refund of 501 exceeds 500']), a('deny', [], ['refund of 900 exceeds 500'])];
  const local = [a('allow'), a('allow')];
  const result = analyze({ combine: 'deny-overrides', failOn: 'overridden', central, local, localRules: [] });
  t.equal(result.conflicts.length, 1);
  t.equal(result.conflicts[0]!.count, 2);
});

t.test('a local deny rule is shadowed when central denies wherever it fires, and only then', async (t) => {
  const rules = [
    { id: 'shadowed', head: 'deny contains "above 1000"' },
    { id: 'useful', head: 'deny contains "eu cap"' },
    { id: 'never', head: 'deny contains "never"' },
  ];
  const central = [a('deny'), a('deny'), a('allow')];
  const local = [a('deny', ['shadowed', 'useful']), a('deny', ['shadowed']), a('deny', ['useful'])];
  const result = analyze({ combine: 'deny-overrides', failOn: 'overridden', central, local, localRules: rules });
  t.match(result.shadowed, [{ rule: 'shadowed', fired: 2 }]);
  t.equal(result.shadowed.length, 1);
  t.match(result.unexercised, [{ rule: 'never' }]);
  // first-applicable: a local rule is shadowed wherever central applies at all.
  const fa = analyze({
    combine: 'first-applicable',
    failOn: 'overridden',
    central: [a('allow'), a('deny'), a('n/a')],
    local: [a('deny', ['shadowed']), a('deny', ['shadowed']), a('deny', ['useful'])],
    localRules: rules.slice(0, 2),
  });
  t.same(
    fa.shadowed.map((s) => s.rule),
    ['shadowed'],
  );
});

t.test('generates inputs around constants, direct comparisons first', async (t) => {
  const seed = { parsed_body: { amount: 100 }, agent: { id: 'support-bot', labels: {} } };
  const all = generateInputs({
    seeds: [seed],
    constants: [{ value: 'eu', inputPath: ['agent', 'labels', 'region'] }, { value: 500 }, { value: 'cs-bot' }],
    dataValues: ['support-bot'],
    max: 100,
  });
  t.ok(all.some((i) => (i as typeof seed & { agent: { labels: { region?: string } } }).agent.labels.region === 'eu'));
  const amounts = all.map((i) => (i as typeof seed).parsed_body.amount);
  t.ok(
    [499, 500, 500.01, 501].every((n) => amounts.includes(n)),
    'the number and its neighbours',
  );
  t.ok(
    all.some((i) => (i as typeof seed).agent.id === 'cs-bot'),
    'an id the policy knows swapped for another it knows',
  );
  const capped = generateInputs({
    seeds: [seed],
    constants: [{ value: 'eu', inputPath: ['agent', 'labels', 'region'] }, { value: 500 }],
    dataValues: [],
    max: 1,
  });
  t.equal(capped.length, 1);
  t.match(capped[0], { agent: { labels: { region: 'eu' } } }, 'the direct comparison is kept when the budget is short');
  t.same(withPath({ a: [1, 2] }, ['a', '1'], 3), { a: [1, 3] });
});
