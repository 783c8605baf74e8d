/**
 * Passwords as 等保三级 asks: at least 12 characters of at least 3 of the 4 classes (lower case, upper case,
 * digits, others), not the login name, not one of the last few; stored as argon2id hashes (@node-rs/argon2).
 */
import { hash, verify, Algorithm } from '@node-rs/argon2';
import { AccountError } from './errors.ts';

export const MIN_LENGTH = 12;
const MAX_LENGTH = 128;

export function hashPassword(password: string): Promise<string> {
  return hash(password, { algorithm: Algorithm.Argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 });
}

export async function passwordMatches(storedHash: string, password: string): Promise<boolean> {
  try {
    return await verify(storedHash, password);
  } catch {
    return false;
  }
}

/** A hash no password matches, verified when the login name is unknown so that both answers take as long. */
let dummy: Promise<string> | undefined;
export function dummyHash(): Promise<string> {
  return (dummy ??= hashPassword('huren-no-such-account-' + Math.random()));
}

/** Refuses a password the policy does not allow (the checks that need no history). */
export function checkStrength(password: unknown, login: string, param = 'password'): string {
  if (typeof password !== 'string' || password === '') throw new AccountError(400, 'password-required', '请输入密码', param);
  const length = [...password].length;
  if (length < MIN_LENGTH) throw new AccountError(422, 'weak-password', `密码至少需要 ${MIN_LENGTH} 个字符`, param);
  if (length > MAX_LENGTH) throw new AccountError(422, 'weak-password', `密码不能超过 ${MAX_LENGTH} 个字符`, param);
  const classes = [/\p{Ll}/u, /\p{Lu}/u, /\p{Nd}/u, /[^\p{Ll}\p{Lu}\p{Nd}]/u].filter((re) => re.test(password)).length;
  if (classes < 3) throw new AccountError(422, 'weak-password', '密码需包含小写字母、大写字母、数字、特殊字符中的至少三类', param);
  if (password.toLowerCase().includes(login.toLowerCase())) throw new AccountError(422, 'weak-password', '密码不能包含登录名', param);
  return password;
}
