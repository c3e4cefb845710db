// Package httpapi is Metachat's HTTP adapter: the chi router, middleware (request ids, panic
// recovery), the one function that turns errors into RFC 9457 problem+json answers, and the
// handlers, one file per resource. Handlers stay thin: decode, call the application, encode.
package httpapi
