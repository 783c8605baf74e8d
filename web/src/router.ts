import { createRouter, createWebHistory } from 'vue-router';
import { token } from './api.ts';

export const router = createRouter({
  history: createWebHistory('/app/'),
  routes: [
    { path: '/', redirect: '/chain' },
    { path: '/login', component: () => import('./pages/Login.vue'), meta: { public: true, title: '登录' } },
    { path: '/screen', component: () => import('./pages/BigScreen.vue'), meta: { title: '大屏', roles: ['commission-admin'], fullscreen: true } },
    { path: '/quality', component: () => import('./pages/Quality.vue'), meta: { title: '数据质控', roles: ['commission-admin', 'institution-admin'] } },
    { path: '/quality/:org', component: () => import('./pages/Institution.vue'), meta: { title: '机构数据质量', roles: ['commission-admin', 'institution-admin'], menu: false } },
    { path: '/chain', component: () => import('./pages/Chain.vue'), meta: { title: '上链统计', roles: ['commission-admin'] } },
    { path: '/patients/:patient/reports', component: () => import('./pages/Reports.vue'), meta: { title: '报告调阅', roles: ['doctor'], menu: false } },
    { path: '/reports/:id', component: () => import('./pages/Report.vue'), meta: { title: '报告详情', roles: ['doctor'], menu: false } },
    { path: '/:rest(.*)', component: () => import('./pages/NotFound.vue'), meta: { public: true, title: '页面不存在' } },
  ],
});

router.beforeEach((to) => {
  if (!to.meta.public && !token()) return { path: '/login', query: { next: to.fullPath } };
  document.title = `${String(to.meta.title ?? '')} · 互认平台`;
  return true;
});
