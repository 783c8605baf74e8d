/**
 * A page's loading state: `loading` while the call runs, `error` with its Chinese message when it fails (the
 * fallback when the failure is not the platform's answer), the result handed to `apply`.
 */
import { ref } from 'vue';
import { messageOf } from './api.ts';

export function useLoader<T>(fetch: () => Promise<T>, apply: (value: T) => void, fallback: string) {
  const loading = ref(false);
  const error = ref('');
  async function load(): Promise<void> {
    loading.value = true;
    error.value = '';
    try {
      apply(await fetch());
    } catch (e) {
      error.value = messageOf(e, fallback);
    } finally {
      loading.value = false;
    }
  }
  return { loading, error, load };
}
