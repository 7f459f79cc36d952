// The Swagger UI at /docs, on the service's OpenAPI document (/docs.json).
window.ui = SwaggerUIBundle({
  url: "docs.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "BaseLayout",
});
