/** The whole adversarial corpus, family by family. */
import type { CorpusCase } from './case.ts';
import { bodyCases } from './bodies.ts';
import { controlCases, tunnelCases, upgradeCases } from './doors.ts';
import { framingCases } from './framing.ts';
import { hostCases, pathCases } from './targets.ts';
import { redteamCases } from './redteam.ts';

/** Every corpus case; `deniedPort` is the port of the tool listening on the denied 127.0.0.9. */
export function corpus(deniedPort: number): CorpusCase[] {
  return [
    ...controlCases(),
    ...tunnelCases(),
    ...upgradeCases(),
    ...bodyCases(),
    ...pathCases(),
    ...hostCases(deniedPort),
    ...framingCases(),
    ...redteamCases(),
  ];
}
