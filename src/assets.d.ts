declare module '*.lua' {
  const source: string
  export default source
}

declare module 'swagger-ui-dist/swagger-ui.css' {
  const path: string
  export default path
}

declare module 'swagger-ui-dist/swagger-ui-bundle.js' {
  const path: string
  export default path
}

/** Files served as they are (imported `with { type: 'text' }`): the console's script and style. */
declare module '*.browser.js' {
  const source: string
  export default source
}

declare module '*.css' {
  const source: string
  export default source
}
