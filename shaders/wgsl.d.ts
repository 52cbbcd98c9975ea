// A `.wgsl` import yields the shader's text and its file name (for error messages).
// scripts/wgsl.mjs makes this module for both esbuild (build) and vite (vitest).
declare module '*.wgsl' {
  const shader: { readonly name: string; readonly code: string };
  export default shader;
}
