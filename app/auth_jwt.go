package app

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/metachat/metachat/domain"
)

// Access tokens are JWTs signed with Ed25519 (alg "EdDSA"), the only algorithm accepted on
// verification:
//
//   - asymmetric: verifying needs only public keys, so nothing that verifies can mint tokens, and a
//     public key may be handed to another service;
//   - one fixed curve with no parameters to get wrong, deterministic signatures (no nonce to leak
//     the key), 64-byte signatures, fast to sign and verify (tens of microseconds);
//   - pinning one algorithm (jwt.WithValidMethods) closes "alg: none" and HS256-with-the-public-key
//     confusion.
//
// Every token carries a "kid" header, a digest of the public key that signed it: the verifier
// holds the current key and any previous ones, so a rotation keeps the tokens of the last hour
// valid. Claims: iss, aud, sub (user id), tid (tenant id), role (informative: each request uses the
// user's current role), iat, nbf, exp (TokenTTL, at most an hour) and jti (a random UUID).

// signingMethod is the one JWT algorithm Metachat signs and accepts.
const signingMethod = "EdDSA"

// GenerateSigningKey returns a new Ed25519 private key for access tokens, PEM-encoded (PKCS #8,
// "PRIVATE KEY"): the value of IdentityConfig.SigningKey. Keep it secret and stable: tokens
// signed with a key stop verifying once it is neither the signing key nor a previous one.
func GenerateSigningKey() ([]byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode signing key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// tokenKeys are the key that signs tokens and the public keys that verify them, by kid.
type tokenKeys struct {
	signing    ed25519.PrivateKey
	signingKID string
	verifying  map[string]ed25519.PublicKey
}

// newTokenKeys parses the signing key and the previous keys.
func newTokenKeys(signing []byte, previous [][]byte) (*tokenKeys, error) {
	if len(signing) == 0 {
		return nil, errors.New("no token signing key")
	}
	priv, _, err := parseEd25519PEM(signing)
	if err != nil {
		return nil, fmt.Errorf("token signing key: %w", err)
	}
	if priv == nil {
		return nil, errors.New("token signing key: a private key is needed")
	}
	pub, _ := priv.Public().(ed25519.PublicKey)
	k := &tokenKeys{signing: priv, signingKID: keyID(pub), verifying: map[string]ed25519.PublicKey{keyID(pub): pub}}
	for n, b := range previous {
		_, pub, err := parseEd25519PEM(b)
		if err != nil {
			return nil, fmt.Errorf("previous token key %d: %w", n, err)
		}
		k.verifying[keyID(pub)] = pub
	}
	return k, nil
}

// parseEd25519PEM parses one PEM block holding an Ed25519 private key (PKCS #8) or public key
// (PKIX). The private key is nil for a public key.
func parseEd25519PEM(b []byte) (ed25519.PrivateKey, ed25519.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, nil, errors.New("not PEM")
	}
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("parse private key: %w", err)
		}
		priv, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, nil, fmt.Errorf("a %T is not an Ed25519 key", k)
		}
		pub, _ := priv.Public().(ed25519.PublicKey)
		return priv, pub, nil
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("parse public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, nil, fmt.Errorf("a %T is not an Ed25519 key", k)
		}
		return nil, pub, nil
	default:
		return nil, nil, fmt.Errorf("PEM block %q is not a PRIVATE KEY or PUBLIC KEY", block.Type)
	}
}

// keyID names a public key: the first 16 hexadecimal digits of its SHA-256.
func keyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// tokenClaims are the claims of an access token.
type tokenClaims struct {
	jwt.RegisteredClaims
	TenantID string `json:"tid"`
	Role     string `json:"role"`
}

// AccessToken is a signed access token and how long it lives.
type AccessToken struct {
	// Token is the JWT, sent as "Authorization: Bearer <Token>".
	Token string
	// TokenType is always "Bearer".
	TokenType string
	// ExpiresIn is the lifetime in seconds; ExpiresAt the moment it ends.
	ExpiresIn int
	ExpiresAt time.Time
}

// issueToken signs an access token for a user.
func (i *Identity) issueToken(tenantID, userID, role string) (AccessToken, error) {
	now := i.now().UTC().Truncate(time.Second)
	exp := now.Add(i.cfg.TokenTTL)
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.cfg.TokenIssuer,
			Subject:   userID,
			Audience:  jwt.ClaimStrings{i.cfg.TokenAudience},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        uuid.NewString(),
		},
		TenantID: tenantID,
		Role:     role,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = i.tokens.signingKID
	signed, err := t.SignedString(i.tokens.signing)
	if err != nil {
		return AccessToken{}, fmt.Errorf("sign access token: %w", err)
	}
	return AccessToken{Token: signed, TokenType: "Bearer", ExpiresIn: int(i.cfg.TokenTTL / time.Second), ExpiresAt: exp}, nil
}

// verifyToken checks an access token's signature (EdDSA only, with the key its kid names), its
// issuer, audience and times, and the shape of its claims. Every failure is the same
// EUNAUTHORIZED error; the reason goes to the debug log, the token never.
func (i *Identity) verifyToken(ctx context.Context, token string) (tokenClaims, error) {
	var claims tokenClaims
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{signingMethod}),
		jwt.WithIssuer(i.cfg.TokenIssuer),
		jwt.WithAudience(i.cfg.TokenAudience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(i.cfg.ClockSkew),
		jwt.WithTimeFunc(i.now),
		jwt.WithStrictDecoding(),
	)
	_, err := parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		pub, ok := i.tokens.verifying[kid]
		if !ok {
			return nil, errors.New("unknown kid")
		}
		return pub, nil
	})
	if err == nil {
		err = checkTokenClaims(claims)
	}
	if err != nil {
		i.log.DebugContext(ctx, "access token refused", "reason", err.Error())
		return tokenClaims{}, unauthorized()
	}
	return claims, nil
}

// checkTokenClaims checks what the JWT library does not: ids are UUIDs, a token id is present and
// the lifetime is at most MaxTokenTTL.
func checkTokenClaims(c tokenClaims) error {
	switch {
	case !domain.IsUUID(c.Subject) || !domain.IsUUID(c.TenantID):
		return errors.New("subject or tenant is not a UUID")
	case c.ID == "":
		return errors.New("no token id")
	case c.IssuedAt == nil || c.ExpiresAt.Sub(c.IssuedAt.Time) > MaxTokenTTL:
		return errors.New("lifetime longer than allowed")
	}
	return nil
}

// unauthorized is the one answer to every credential that does not authenticate.
func unauthorized() error {
	return domain.Errorf(domain.EUNAUTHORIZED, "Invalid or expired credential.")
}
