/**
 * The app's entry. Element Plus is not installed whole: the build (web/vite.config.ts, unplugin-vue-components
 * with the Element Plus resolver) imports each component a page's template uses, with its CSS, into that
 * page's chunk, so the big screen loads only what it shows. The Chinese locale is set once for the app and for
 * the message boxes opened from code (feedback.ts).
 */
import { createApp } from 'vue';
import { provideGlobalConfig } from 'element-plus';
import zhCn from 'element-plus/es/locale/lang/zh-cn';
import App from './App.vue';
import { router } from './router.ts';

const app = createApp(App);
provideGlobalConfig({ locale: zhCn }, app, true);
app.use(router).mount('#app');
