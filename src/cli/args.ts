/**
 * What the subcommands share about their arguments: bad usage is an input error naming the
 * command, and the admin-client commands find the admin API the same way.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { TollgateError } from '../errors.ts';

/** Parses a subcommand's arguments (node:util parseArgs); bad usage throws TG_ERR_INPUT_INVALID naming the command. */
export function parseCommandArgs<T extends ParseArgsConfig>(
  command: string,
  config: T,
): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (cause) {
    throw new TollgateError('TG_ERR_INPUT_INVALID', `${command}: ${(cause as Error).message}`, { cause });
  }
}

/** The admin API address: --admin, else $TOLLGATE_ADMIN_URL, else the default admin listener. */
export function adminUrl(flag: string | undefined, env: Record<string, string | undefined>): string {
  return flag ?? env.TOLLGATE_ADMIN_URL ?? 'http://127.0.0.1:15000';
}

/** What every admin-API client command takes besides its own arguments. */
export interface AdminClientOptions {
  /** The admin API address (adminUrl). */
  readonly admin: string;
  /** The bearer token of the admin routes. */
  readonly token: string;
  /** Print the API's JSON instead of text. */
  readonly json: boolean;
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly timeoutMs?: number;
}
