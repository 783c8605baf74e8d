/**
 * Prints a briefing's HTML to PDF with a headless Chromium (Debian's /usr/bin/chromium by default, or
 * HUREN_CHROMIUM) through playwright-core: `page.setContent(html)` then `page.pdf()`. The Chinese text needs CJK
 * fonts on the machine (fonts-noto-cjk). Without a Chromium the briefings are kept as HTML only and a PDF
 * request answers 503 (docs/monitoring.md "Briefing").
 */
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

export class PdfUnavailable extends Error {}

export class PdfPrinter {
  constructor(readonly chromiumPath: string) {}

  /** Whether a Chromium is installed where the setting says. */
  available(): boolean {
    return this.chromiumPath !== '' && existsSync(this.chromiumPath);
  }

  /** Why there is no PDF (for the 503 answer). */
  why(): string {
    return `PDF rendering is not available on this server: no Chromium at '${this.chromiumPath}' (install chromium and fonts-noto-cjk, or set HUREN_CHROMIUM); the HTML briefing is available`;
  }

  /** The PDF of a self-contained HTML page (A4). One browser per call: briefings are few. */
  async print(html: string): Promise<Buffer> {
    if (!this.available()) throw new PdfUnavailable(this.why());
    const browser = await chromium.launch({
      executablePath: this.chromiumPath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking'],
    });
    try {
      const page = await browser.newPage();
      // the HTML has no external resources; nothing may be fetched while printing
      await page.route('**/*', (route) => (route.request().url().startsWith('data:') ? route.continue() : route.abort()));
      await page.setContent(html, { waitUntil: 'load' });
      return Buffer.from(await page.pdf({ format: 'A4', printBackground: true, preferCSSPageSize: true }));
    } finally {
      await browser.close();
    }
  }
}
