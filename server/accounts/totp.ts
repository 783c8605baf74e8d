/** The second factor: RFC 6238 TOTP (otplib; 6 digits, 30 s, SHA-1 — what authenticator apps read from the URI). */
import { generateSecret, generateURI, verify } from 'otplib';

const PERIOD = 30;

export const newTotpSecret = (): string => generateSecret({ length: 20 });

export const otpauthUri = (secret: string, issuer: string, login: string): string => generateURI({ issuer, label: login, secret });

/** The RFC 6238 time step the code belongs to (the current one or one either side), or undefined when it is wrong. */
export async function totpStep(secret: string, code: string, nowMs: number): Promise<number | undefined> {
  const epoch = Math.floor(nowMs / 1000);
  const result = await verify({ secret, token: code, epoch, epochTolerance: PERIOD });
  return result.valid ? Math.floor(epoch / PERIOD) + result.delta : undefined;
}
