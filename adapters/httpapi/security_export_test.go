package httpapi

// Test-only access for the security tests.

// ConfigForTest returns the server's configuration (defaults applied), so a test can build
// another server on the same services with a setting changed.
func (s *Server) ConfigForTest() Config { return s.cfg }
