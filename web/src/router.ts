import { createRouter, createWebHistory } from 'vue-router';
import { token } from './api.ts';

export const router = createRouter({
  history: createWebHistory('/app/'),
  routes: [
    { path: '/', redirect: '/chain' },
    { path: '/login', component: () => import('./pages/Login.vue'), meta: { public: true, title: '登录' } },
    { path: '/chain', component: () => import('./pages/Chain.vue'), meta: { title: '上链统计' } },
    { path: '/patients/:patient/reports', component: () => import('./pages/Reports.vue'), meta: { title: '报告调阅' } },
    { path: '/reports/:id', component: () => import('./pages/Report.vue'), meta: { title: '报告详情' } },
    { path: '/:rest(.*)', component: () => import('./pages/NotFound.vue'), meta: { public: true, title: '页面不存在' } },
  ],
});

router.beforeEach((to) => {
  if (!to.meta.public && !token()) return { path: '/login', query: { next: to.fullPath } };
  document.title = `${String(to.meta.title ?? '')} · 互认平台`;
  return true;
});
