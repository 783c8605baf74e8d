/**
 * The app's pages. Each route's `meta` says what it is: `title` (its Chinese name, shown in the menu and the
 * window title) and `roles` (who may open it; the navigation menu lists exactly the routes with a title and
 * roles, in this order, that the signed-in user may open — `menu: false` keeps a page out of the menu).
 * `public` pages need no sign-in; `bare` pages show without the menu. The guard sends a visitor without a
 * session to the sign-in page, an account that must change its password to /password, and a user whose roles
 * do not reach a page to /forbidden. The server refuses the data as well: the guard is for the user, not the
 * protection.
 */
import { createRouter, createWebHistory, type RouteLocationNormalized, type RouteRecordRaw } from 'vue-router';
import { onSessionLost, token } from './api.ts';
import { currentUser, resetUser, type Role } from './session.ts';

declare module 'vue-router' {
  interface RouteMeta {
    title?: string;
    roles?: readonly Role[];
    public?: boolean;
    bare?: boolean;
    menu?: boolean;
  }
}

const COMMISSION: Role[] = ['commission-admin'];

export const routes: RouteRecordRaw[] = [
  { path: '/', component: () => import('./pages/NotFound.vue'), meta: { title: '首页' } },
  { path: '/login', component: () => import('./pages/Login.vue'), meta: { public: true, bare: true, title: '登录' } },
  { path: '/password', component: () => import('./pages/Password.vue'), meta: { bare: true, title: '修改密码' } },
  { path: '/forbidden', component: () => import('./pages/Forbidden.vue'), meta: { title: '无权访问' } },
  { path: '/screen', component: () => import('./pages/BigScreen.vue'), meta: { title: '大屏', roles: COMMISSION, bare: true, fullscreen: true } },
  { path: '/quality', component: () => import('./pages/Quality.vue'), meta: { title: '数据质控', roles: [...COMMISSION, 'institution-admin'] } },
  { path: '/quality/:org', component: () => import('./pages/Institution.vue'), meta: { title: '机构数据质量', roles: [...COMMISSION, 'institution-admin'], menu: false } },
  { path: '/chain', component: () => import('./pages/Chain.vue'), meta: { title: '上链统计', roles: [...COMMISSION, 'institution-admin'] } },
  { path: '/briefings', component: () => import('./pages/Briefings.vue'), meta: { title: '数据分析简报', roles: COMMISSION } },
  { path: '/dictionary', component: () => import('./pages/Dictionary.vue'), meta: { title: '字典质控', roles: [...COMMISSION, 'institution-admin', 'system-admin'] } },
  { path: '/settings', component: () => import('./pages/Settings.vue'), meta: { title: '设置', roles: ['system-admin'] } },
  { path: '/users', component: () => import('./pages/Users.vue'), meta: { title: '用户与权限', roles: ['security-admin'] } },
  { path: '/users/clients', component: () => import('./pages/Clients.vue'), meta: { title: '接入客户端', roles: ['security-admin'], menu: false } },
  { path: '/audit', component: () => import('./pages/Audit.vue'), meta: { title: '审计日志', roles: ['audit-admin'] } },
  { path: '/patients/:patient/reports', component: () => import('./pages/Reports.vue'), meta: { title: '报告调阅', roles: ['doctor'], menu: false } },
  { path: '/reports/:id', component: () => import('./pages/Report.vue'), meta: { title: '报告详情', roles: ['doctor'], menu: false } },
  // SMART App Launch from the HIS (launch.ts): the launch, and the authorization server's answer
  { path: '/launch', component: () => import('./pages/Launch.vue'), meta: { public: true, bare: true, title: '报告调阅' } },
  { path: '/launch/callback', component: () => import('./pages/Launch.vue'), meta: { public: true, bare: true, title: '报告调阅' } },
  { path: '/:rest(.*)', component: () => import('./pages/NotFound.vue'), meta: { public: true, title: '页面不存在' } },
];

export const router = createRouter({ history: createWebHistory('/app/'), routes });

/** May a user with these roles open the route? (routes without roles: any signed-in user) */
export const allowed = (meta: { roles?: readonly Role[] }, roles: readonly Role[]) => !meta.roles || meta.roles.some((r) => roles.includes(r));

/** The menu: every titled route with roles, not hidden, that these roles may open, in the order of `routes`. */
export function menuFor(roles: readonly Role[]): { path: string; title: string }[] {
  return router
    .getRoutes()
    .filter((r) => r.meta.title && r.meta.roles && r.meta.menu !== false && !r.path.includes(':') && allowed(r.meta, roles))
    .sort((a, b) => routeOrder(a.path) - routeOrder(b.path))
    .map((r) => ({ path: r.path, title: r.meta.title! }));
}

const routeOrder = (path: string) => {
  const i = routes.findIndex((r) => r.path === path);
  return i < 0 ? routes.length : i;
};

const withNext = (to: RouteLocationNormalized) => (to.fullPath === '/' || to.path === '/login' ? {} : { next: to.fullPath });

router.beforeEach(async (to) => {
  document.title = `${String(to.meta.title ?? '')} · 互认平台`;
  if (to.meta.public) return true;
  if (!token()) return { path: '/login', query: withNext(to) };
  let me;
  try {
    me = await currentUser();
  } catch {
    return { path: '/login', query: { reason: 'unavailable' } };
  }
  if (!me) return { path: '/login', query: { reason: 'expired', ...withNext(to) } };
  if (me.mustChangePassword && to.path !== '/password') return { path: '/password', query: withNext(to) };
  if (to.path === '/') return me.launched ? `/patients/${encodeURIComponent(me.launched.patient)}/reports` : (menuFor(me.roles)[0]?.path ?? '/forbidden');
  if (!allowed(to.meta, me.roles)) return { path: '/forbidden', query: { page: to.meta.title ?? to.path } };
  return true;
});

onSessionLost((reason) => {
  resetUser();
  const current = router.currentRoute.value;
  if (current.meta.public) return;
  // a doctor opened from the HIS has no platform account to sign in with: back to the HIS
  if (reason === 'launch-ended') return void router.replace({ path: '/launch', query: { ended: '1' } });
  void router.replace({ path: '/login', query: { reason, ...withNext(current) } });
});
