package app

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/metachat/metachat/domain"
)

// Password rules, in characters.
const (
	MinPasswordLen = 10
	MaxPasswordLen = 256
)

// Default argon2id parameters: 32 MiB, 2 passes, 1 lane. One hash takes about 35 ms on the
// development machine (measured: 19 MiB/t=2 21 ms, 32 MiB/t=2 35 ms, 46 MiB/t=1 33 ms, 64 MiB/t=1
// 43 ms), inside the 20–50 ms aimed at.
const (
	DefaultPasswordMemory      = 32 * 1024 // KiB
	DefaultPasswordIterations  = 2
	DefaultPasswordParallelism = 1
)

// Bounds of argon2id parameters, for configuration and for stored hashes alike (a corrupt hash
// must not make a login allocate gigabytes).
const (
	maxPasswordMemory     = 1 << 20 // KiB: 1 GiB
	maxPasswordIterations = 64
	passwordSaltLen       = 16
	passwordKeyLen        = 32
	minStoredSaltLen      = 8
	maxStoredPartLen      = 128
)

// PasswordParams are the argon2id cost parameters of new password hashes. Each hash records its
// own parameters (PHC format), so changing them affects new hashes only.
type PasswordParams struct {
	// Memory is in KiB. Default DefaultPasswordMemory.
	Memory uint32
	// Iterations is the number of passes. Default DefaultPasswordIterations.
	Iterations uint32
	// Parallelism is the number of lanes. Default DefaultPasswordParallelism.
	Parallelism uint8
}

func (p *PasswordParams) setDefaults() {
	if p.Memory == 0 {
		p.Memory = DefaultPasswordMemory
	}
	if p.Iterations == 0 {
		p.Iterations = DefaultPasswordIterations
	}
	if p.Parallelism == 0 {
		p.Parallelism = DefaultPasswordParallelism
	}
}

func (p PasswordParams) validate() error {
	var errs []error
	if p.Memory < 8*uint32(p.Parallelism) || p.Memory > maxPasswordMemory {
		errs = append(errs, fmt.Errorf("password memory %d KiB must be between 8×parallelism and %d", p.Memory, maxPasswordMemory))
	}
	if p.Iterations < 1 || p.Iterations > maxPasswordIterations {
		errs = append(errs, fmt.Errorf("password iterations %d must be between 1 and %d", p.Iterations, maxPasswordIterations))
	}
	return errors.Join(errs...)
}

// defaultConcurrentHashes is one hash per processor.
func defaultConcurrentHashes() int { return runtime.GOMAXPROCS(0) }

// passwordHasher hashes and verifies passwords with argon2id, at most a bounded number at once.
type passwordHasher struct {
	params PasswordParams
	slots  chan struct{}
	// dummy is a hash of a random password, verified when there is no user, so that an unknown
	// email costs as much as a wrong password.
	dummy string
}

func newPasswordHasher(p PasswordParams, concurrency int) (*passwordHasher, error) {
	h := &passwordHasher{params: p, slots: make(chan struct{}, max(concurrency, 1))}
	random := make([]byte, 32)
	if _, err := rand.Read(random); err != nil {
		return nil, fmt.Errorf("dummy password: %w", err)
	}
	dummy, err := h.hash(context.Background(), base64.RawStdEncoding.EncodeToString(random))
	if err != nil {
		return nil, err
	}
	h.dummy = dummy
	return h, nil
}

// validPassword checks the password rules.
func validPassword(password string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case !utf8.ValidString(password):
		return domain.Invalid("Invalid password.", domain.FieldError{Field: "password", Message: "must be valid UTF-8"})
	case n < MinPasswordLen:
		return domain.Invalid("Invalid password.", domain.FieldError{Field: "password", Message: "must be at least 10 characters"})
	case n > MaxPasswordLen:
		return domain.Invalid("Invalid password.", domain.FieldError{Field: "password", Message: "must be at most 256 characters"})
	}
	return nil
}

// acquire takes a hashing slot, or gives up when ctx ends.
func (h *passwordHasher) acquire(ctx context.Context) (release func(), err error) {
	select {
	case h.slots <- struct{}{}:
		return func() { <-h.slots }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait to hash a password: %w", ctx.Err())
	}
}

// hash returns the PHC string of a new argon2id hash of password with a random salt:
// $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<key>, salt and key in unpadded base64.
func (h *passwordHasher) hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, passwordSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	release, err := h.acquire(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	p := h.params
	key := argon2.IDKey([]byte(password), salt, p.Iterations, p.Memory, p.Parallelism, passwordKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Iterations, p.Parallelism,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// verify reports whether password matches the PHC hash encoded, comparing in constant time. An
// encoded hash that cannot be parsed is an error.
func (h *passwordHasher) verify(ctx context.Context, encoded, password string) (bool, error) {
	p, salt, want, err := parsePasswordHash(encoded)
	if err != nil {
		return false, err
	}
	release, err := h.acquire(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	got := argon2.IDKey([]byte(password), salt, p.Iterations, p.Memory, p.Parallelism, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// verifyDummy verifies password against the dummy hash and always reports false: the cost of a
// check without a user.
func (h *passwordHasher) verifyDummy(ctx context.Context, password string) {
	_, _ = h.verify(ctx, h.dummy, password)
}

// parsePasswordHash parses an argon2id PHC string, refusing parameters outside the bounds.
func parsePasswordHash(encoded string) (PasswordParams, []byte, []byte, error) {
	bad := func(why string) (PasswordParams, []byte, []byte, error) {
		return PasswordParams{}, nil, nil, fmt.Errorf("malformed password hash: %s", why)
	}
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return bad("not an argon2id PHC string")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return bad("unsupported version")
	}
	var p PasswordParams
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return bad("parameter without value")
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return bad("parameter is not a number")
		}
		switch k {
		case "m":
			p.Memory = uint32(n)
		case "t":
			p.Iterations = uint32(n)
		case "p":
			if n > 255 {
				return bad("parallelism out of range")
			}
			p.Parallelism = uint8(n)
		default:
			return bad("unknown parameter")
		}
	}
	if p.Parallelism < 1 {
		return bad("parallelism out of range")
	}
	if err := p.validate(); err != nil {
		return bad(err.Error())
	}
	if len(parts[4]) > maxStoredPartLen || len(parts[5]) > maxStoredPartLen {
		return bad("salt or key too long")
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) < minStoredSaltLen {
		return bad("salt")
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) < 16 {
		return bad("key")
	}
	return p, salt, key, nil
}
