// The Swagger UI at /docs, on the service's OpenAPI document (/docs.json).

import { storedKey } from "./api.js";

window.ui = SwaggerUIBundle({
  url: "docs.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "BaseLayout",
  // A service started with VISION_API_KEYS: the key that the demo page keeps for this tab goes with
  // every request the UI makes, /docs.json included (enter it on the page first).
  requestInterceptor: (request) => {
    const key = storedKey();
    if (key) request.headers.Authorization = `Bearer ${key}`;
    return request;
  },
});
