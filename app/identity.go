package app

// Identity is the identity service: sign-up, login, users, API keys and authentication.
// (Being built.)
type Identity struct{}
