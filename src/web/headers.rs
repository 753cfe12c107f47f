//! The security headers every response carries, on every listener: set by the router's
//! middleware and again by the connection layer (`serve`), so that answers made outside the
//! router's inner layers (408 from the request timeout, 413 from the body limit, the port-80
//! redirects, anything a layer added later answers early) carry them too. A header a route set
//! itself is kept.

use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// No inline script or style, no plugins, no framing, forms only to this site.
pub const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                       script-src 'self'; object-src 'none'; base-uri 'self'; \
                       form-action 'self'; frame-ancestors 'none'";

/// Browser features no page of the shop uses, off for it and anything it could be made to
/// embed. The photo search takes a picture through the file input (the phone's camera app),
/// which needs no camera permission.
pub const PERMISSIONS_POLICY: &str = "accelerometer=(), autoplay=(), camera=(), \
     display-capture=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), \
     midi=(), payment=(), publickey-credentials-get=(), screen-wake-lock=(), serial=(), \
     usb=(), xr-spatial-tracking=(), interest-cohort=()";

const ALL: [(&str, &str); 5] = [
    ("content-security-policy", CSP),
    ("permissions-policy", PERMISSIONS_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    ("x-frame-options", "DENY"),
];

/// Add the headers a response lacks.
pub fn secure(h: &mut HeaderMap) {
    for (name, value) in ALL {
        h.entry(HeaderName::from_static(name))
            .or_insert_with(|| HeaderValue::from_static(value));
    }
}
