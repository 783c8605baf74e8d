import type { OperationOutcomeIssue } from '@medplum/fhirtypes';

export type Severity = 'error' | 'warning' | 'information';

export function issue(severity: Severity, code: OperationOutcomeIssue['code'], text: string, expression: string): OperationOutcomeIssue {
  return { severity, code, details: { text }, expression: [expression || 'Resource'] };
}

/** Collects issues during one validation. */
export class Issues {
  readonly list: OperationOutcomeIssue[] = [];
  error(code: OperationOutcomeIssue['code'], text: string, expression: string): void {
    this.list.push(issue('error', code, text, expression));
  }
  warning(code: OperationOutcomeIssue['code'], text: string, expression: string): void {
    this.list.push(issue('warning', code, text, expression));
  }
}
