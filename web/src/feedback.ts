/**
 * The messages and message boxes the pages open from code (not from a template, so the build's component
 * resolver does not see them): the functions with their CSS.
 */
import 'element-plus/es/components/message/style/css';
import 'element-plus/es/components/message-box/style/css';

export { ElMessage, ElMessageBox } from 'element-plus';
