package app_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
)

// parseSigningKey reads a PEM key made by app.GenerateSigningKey.
func parseSigningKey(t *testing.T, b []byte) ed25519.PrivateKey {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("not a PEM private key: %q", b)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(ed25519.PrivateKey)
}

func TestAccessTokenTampering(t *testing.T) {
	t.Parallel()
	h := newIdentityHarness(t, nil)
	res := h.signup(t, "owner@jwt.example")
	good := res.Token.Token
	h.principal(t, good)

	unverified, _, err := jwt.NewParser().ParseUnverified(good, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := unverified.Header["kid"].(string)
	if unverified.Method.Alg() != "EdDSA" || kid == "" {
		t.Fatalf("token header %v", unverified.Header)
	}
	key := parseSigningKey(t, h.signingKey)
	now := time.Now()
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{
			"iss": app.DefaultTokenIssuer, "aud": []string{app.DefaultTokenAudience}, "sub": res.UserID,
			"tid": res.TenantID, "role": domain.RoleOwner, "iat": now.Unix(), "nbf": now.Unix(),
			"exp": now.Add(30 * time.Minute).Unix(), "jti": uuid.NewString(),
		}
		if edit != nil {
			edit(c)
		}
		return c
	}
	sign := func(method jwt.SigningMethod, signKey any, c jwt.MapClaims, header map[string]any) string {
		t.Helper()
		tok := jwt.NewWithClaims(method, c)
		tok.Header["kid"] = kid
		for k, v := range header {
			if v == nil {
				delete(tok.Header, k)
			} else {
				tok.Header[k] = v
			}
		}
		s, err := tok.SignedString(signKey)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if p := h.principal(t, sign(jwt.SigningMethodEdDSA, key, claims(nil), nil)); p.UserID != res.UserID {
		t.Fatalf("a well-made token authenticates as %+v", p)
	}

	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	pub := key.Public().(ed25519.PublicKey)
	parts := strings.Split(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := strings.Replace(string(payload), res.TenantID, uuid.NewString(), 1)
	other := h.signup(t, "owner@other-jwt.example")
	// The signature's last character carries 4 padding bits: flipping one gives another text of the
	// same signature, which strict decoding refuses (a token has one spelling).
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	sig := parts[2]
	respelled := sig[:len(sig)-1] + string(alphabet[strings.IndexByte(alphabet, sig[len(sig)-1])^1])

	cases := map[string]string{
		"alg none":                  sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil), nil),
		"HS256 with the public key": sign(jwt.SigningMethodHS256, []byte(pub), claims(nil), nil),
		"wrong key":                 sign(jwt.SigningMethodEdDSA, otherKey, claims(nil), nil),
		"expired":                   sign(jwt.SigningMethodEdDSA, key, claims(func(c jwt.MapClaims) { c["iat"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix() }), nil),
		"not yet valid":             sign(jwt.SigningMethodEdDSA, key, claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(10 * time.Minute).Unix() }), nil),
		"issued in the future":      sign(jwt.SigningMethodEdDSA, key, claims(func(c jwt.MapClaims) { c["iat"] = now.Add(10 * time.Minute).Unix() }), nil),
		"wrong audience":            sign(jwt.SigningMethodEdDSA, key, claims(func(c jwt.MapClaims) { c["aud"] = []string{"someone-else"} }), nil),
		"wrong issuer":              sign(jwt.SigningMethodEdDSA, key, claims(func(c jwt.MapClaims) { c["iss"] = "evil" }), nil),
		"no expiry":                 sign(jwt.SigningMethodEdDSA, key, claims(func(c jwt.MapClaims) { delete(c, "exp") }), nil),
		"lifetime over an hour":     sign(jwt.SigningMethodEdDSA, key, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(2 * time.Hour).Unix() }), nil),
		"subject not a UUID":        sign(jwt.SigningMethodEdDSA, key, claims(func(c jwt.MapClaims) { c["sub"] = "admin" }), nil),
		"no token id":               sign(jwt.SigningMethodEdDSA, key, claims(func(c jwt.MapClaims) { delete(c, "jti") }), nil),
		"user of another tenant":    sign(jwt.SigningMethodEdDSA, key, claims(func(c jwt.MapClaims) { c["tid"] = other.TenantID }), nil),
		"no kid":                    sign(jwt.SigningMethodEdDSA, key, claims(nil), map[string]any{"kid": nil}),
		"unknown kid":               sign(jwt.SigningMethodEdDSA, key, claims(nil), map[string]any{"kid": "0123456789abcdef"}),
		"payload swapped":           parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2],
		"signature respelled":       parts[0] + "." + parts[1] + "." + respelled,
		"signature dropped":         parts[0] + "." + parts[1] + ".",
		"garbage":                   "not.a.token",
		"empty":                     "",
		"huge":                      strings.Repeat("a", 5000),
	}
	for name, tok := range cases {
		h.refused(t, tok, name)
	}
}

func TestAccessTokenKeyRotation(t *testing.T) {
	t.Parallel()
	h := newIdentityHarness(t, nil)
	res := h.signup(t, "owner@rotate.example")
	newKey, err := app.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	oldPublic, err := x509.MarshalPKIXPublicKey(parseSigningKey(t, h.signingKey).Public())
	if err != nil {
		t.Fatal(err)
	}
	rotated := h.identity(t, func(c *app.IdentityConfig) {
		c.SigningKey = newKey
		c.PreviousSigningKeys = [][]byte{pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: oldPublic})}
	})
	if p, err := rotated.Authenticate(t.Context(), res.Token.Token); err != nil || p.UserID != res.UserID {
		t.Errorf("a token of the previous key after rotation: %+v %v", p, err)
	}
	tok, err := rotated.Login(t.Context(), app.LoginInput{Email: "owner@rotate.example", Password: identityTestPassword})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := rotated.Authenticate(t.Context(), tok.Token); err != nil || p.UserID != res.UserID {
		t.Errorf("a token of the new key: %+v %v", p, err)
	}
	h.refused(t, tok.Token, "a token of a key the old instance does not know")
	retired := h.identity(t, func(c *app.IdentityConfig) { c.SigningKey = newKey })
	if _, err := retired.Authenticate(t.Context(), res.Token.Token); domain.ErrorCode(err) != domain.EUNAUTHORIZED {
		t.Errorf("a token of a retired key: %v", err)
	}
}

func TestIdentityConfigValidate(t *testing.T) {
	t.Parallel()
	key, err := app.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	pepper, err := app.GenerateAPIKeyPepper()
	if err != nil {
		t.Fatal(err)
	}
	if len(pepper) < app.MinAPIKeyPepperLen {
		t.Fatalf("pepper of %d bytes", len(pepper))
	}
	cfg := app.IdentityConfig{SigningKey: key, APIKeyPepper: pepper}
	err = cfg.Validate()
	for _, want := range []string{"no event store", "no registry", "no database pool", "no waiter"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	for name, edit := range map[string]func(*app.IdentityConfig){
		"token TTL":   func(c *app.IdentityConfig) { c.TokenTTL = 2 * time.Hour },
		"pepper":      func(c *app.IdentityConfig) { c.APIKeyPepper = []byte("short") },
		"signing key": func(c *app.IdentityConfig) { c.SigningKey = []byte("not a key") },
		"public key": func(c *app.IdentityConfig) {
			c.PreviousSigningKeys = [][]byte{[]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")}
		},
		"password cost": func(c *app.IdentityConfig) { c.Password.Iterations = 1000 },
	} {
		c := cfg
		edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), strings.Fields(name)[0]) {
			t.Errorf("%s: Validate() = %v", name, err)
		}
	}
}
