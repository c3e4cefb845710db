package httpapi

// Test-only access to internals.

// WriteErrorForTest exposes writeError to the external tests.
var WriteErrorForTest = writeError
