package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"

	"github.com/go-chi/chi/v5"
	verrors "github.com/pb33f/libopenapi-validator/errors"

	"github.com/metachat/metachat/domain"
)

// Authenticator turns a bearer credential (a dashboard JWT or an API key) into the principal it
// belongs to. It returns an EUNAUTHORIZED error for anything that is not a valid, live credential.
type Authenticator interface {
	Authenticate(ctx context.Context, bearer string) (domain.Principal, error)
}

const principalKey ctxKey = iota + 100

// principal returns the authenticated caller of a request (zero for public operations).
func principal(ctx context.Context) domain.Principal {
	p, _ := ctx.Value(principalKey).(domain.Principal)
	return p
}

// handle registers h for method and pattern, which must be an operation of the OpenAPI document
// (the server refuses to start otherwise). Every request to it is then, in order: authenticated
// (unless the operation is public), checked against the operation's x-roles (403), limited in
// size (413) and validated against the document (400), before h runs with the principal in its
// context. So no route can exist outside the contract, and none can forget its checks.
func (s *Server) handle(r chi.Router, method, pattern string, h http.HandlerFunc) {
	op, ok := s.contract.operation(method, pattern)
	if !ok {
		panic(fmt.Sprintf("httpapi: %s %s is not in the OpenAPI document", method, pattern))
	}
	s.registered[method+" "+pattern] = true
	r.Method(method, pattern, s.operationHandler(op, h))
}

func (s *Server) operationHandler(op *operation, h http.HandlerFunc) http.HandlerFunc {
	b := s.budgetOf(op) // ratelimit.go
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		var p domain.Principal
		if !op.Public() {
			var err error
			p, err = s.authenticate(ctx, r)
			if err != nil {
				// A refused credential spends its client address's budget: guessing
				// credentials is limited like any anonymous request.
				if s.allow(w, r, b, domain.Principal{}) {
					s.writeError(w, r, err)
				}
				return
			}
		}
		if !s.allow(w, r, b, p) {
			return
		}
		if !op.Public() {
			if !op.Roles[p.Role] {
				s.writeError(w, r, domain.Errorf(domain.EFORBIDDEN, "Your role (%s) may not call %s.", p.Role, op.ID))
				return
			}
			ctx = context.WithValue(ctx, principalKey, p)
			r = r.WithContext(ctx)
		}
		if err := s.validate(op, r); err != nil {
			s.writeError(w, r, err)
			return
		}
		h(w, r)
	}
}

// authenticate reads the Authorization header.
func (s *Server) authenticate(ctx context.Context, r *http.Request) (domain.Principal, error) {
	token, err := bearerToken(r.Header.Values("Authorization"))
	if err != nil {
		return domain.Principal{}, err
	}
	if s.cfg.Auth == nil {
		return domain.Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "Authentication is not configured.")
	}
	p, err := s.cfg.Auth.Authenticate(ctx, token)
	if err != nil {
		return domain.Principal{}, err
	}
	if !p.Authenticated() {
		return domain.Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "Invalid credential.")
	}
	return p, nil
}

// maxBearerLen bounds the credential of an Authorization header.
const maxBearerLen = 4096

// bearerToken parses the Authorization header values: exactly one "Bearer <token>" (the scheme in
// any case), the token non-empty, at most maxBearerLen bytes, without spaces or control
// characters. Anything else is EUNAUTHORIZED, and the answer never repeats the header.
func bearerToken(values []string) (string, error) {
	if len(values) == 0 || (len(values) == 1 && values[0] == "") {
		return "", domain.Errorf(domain.EUNAUTHORIZED, "Missing Authorization header; send \"Authorization: Bearer <token>\".")
	}
	malformed := domain.Errorf(domain.EUNAUTHORIZED, "Malformed Authorization header; send \"Authorization: Bearer <token>\".")
	if len(values) > 1 {
		return "", malformed
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	token = strings.TrimLeft(token, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || len(token) > maxBearerLen {
		return "", malformed
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c == 0x7f {
			return "", malformed
		}
	}
	return token, nil
}

// validate checks the request against the operation: body size (413), JSON syntax and the
// document's schemas for parameters and body (400 naming each field). It leaves the body readable
// for the handler.
//
// A request that passes the operation's precompiled check (op.check, compiled from the document
// at start; see requestCheck) is valid without more work. Any other request, and every request
// to an operation without a check, is validated by libopenapi-validator, whose findings make the
// 400 answer.
func (s *Server) validate(op *operation, r *http.Request) error {
	if op.Multipart {
		return s.validateMultipart(r) // documents.go
	}
	var (
		body    []byte
		decoded any  // the body, decoded for op.check
		isJSON  bool // decoded holds the body
	)
	if op.HasBody {
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(nil, r.Body, s.cfg.MaxBodyBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return domain.Errorf(domain.ETOOLARGE, "The request body is larger than %d bytes.", s.cfg.MaxBodyBytes)
			}
			return domain.Errorf(domain.EINVALID, "The request body could not be read.")
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/json") {
			return &domain.Error{Code: domain.EUNSUPPORTED, Message: "Send the request body as application/json.",
				Fields: []domain.FieldError{{Field: "Content-Type", Message: "must be application/json"}}}
		}
		// A body of plain strings that certainly passes needs no decoding here (passesRaw checks
		// its syntax too), when the rest of the request passes.
		if op.check != nil && op.check.passesRaw(r, body) {
			r.Body = io.NopCloser(bytes.NewReader(body))
			return nil
		}
		// Decoding succeeds only for valid JSON, so the check's decoding also checks the syntax;
		// valid JSON that does not decode (a number beyond float64) goes on to the validator.
		if op.check != nil && op.check.body != nil {
			isJSON = json.Unmarshal(body, &decoded) == nil
		}
		if !isJSON && !json.Valid(body) {
			return domain.Invalid("The request body is not valid JSON.", domain.FieldError{Field: "body", Message: "malformed JSON"})
		}
	}
	if op.check != nil && op.check.passes(r, decoded, isJSON) {
		if op.HasBody {
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		return nil
	}
	if op.HasBody {
		r.Body = io.NopCloser(bytes.NewReader(body))
		defer func() { r.Body = io.NopCloser(bytes.NewReader(body)) }()
	}
	ok, verrs := s.contract.validator.ValidateHttpRequestSyncWithPathItem(r, op.pathItem, op.Path)
	if ok {
		return nil
	}
	return validationError(verrs)
}

// validationError turns the validator's findings into one EINVALID error with a field per problem.
func validationError(verrs []*verrors.ValidationError) error {
	var fields []domain.FieldError
	seen := map[string]bool{}
	add := func(field, msg string) {
		if field == "" {
			field = "body"
		}
		if k := field + "\x00" + msg; !seen[k] {
			seen[k] = true
			fields = append(fields, domain.FieldError{Field: field, Message: msg})
		}
	}
	for _, v := range verrs {
		if len(v.SchemaValidationErrors) == 0 {
			field := v.ParameterName
			add(field, firstNonEmpty(v.Reason, v.Message))
			continue
		}
		for _, f := range v.SchemaValidationErrors {
			parent := strings.TrimPrefix(strings.TrimPrefix(f.FieldPath, "$"), ".")
			if parent == "" && v.ParameterName != "" {
				parent = v.ParameterName
			}
			// "required" and "additionalProperties" are reported on the object holding the
			// property: name the property itself.
			if m := namedProperties.FindStringSubmatch(f.Reason); m != nil {
				msg := "is required"
				if m[1] == "additional" {
					msg = "is not allowed"
				}
				for _, name := range quotedName.FindAllStringSubmatch(m[2], -1) {
					add(joinField(parent, name[1]), msg)
				}
				continue
			}
			add(parent, f.Reason)
		}
	}
	return domain.Invalid("The request is invalid.", fields...)
}

var (
	namedProperties = regexp.MustCompile(`^(missing|additional) propert(?:y|ies) (.*?)(?: not allowed)?$`)
	quotedName      = regexp.MustCompile(`'([^']*)'`)
)

func joinField(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// decodeJSON decodes a validated request body into v.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		return domain.Invalid("The request body does not match the expected shape.", domain.FieldError{Field: "body", Message: err.Error()})
	}
	return nil
}

// idempotencyKey returns the request's Idempotency-Key header ("" when absent).
func idempotencyKey(r *http.Request) string { return r.Header.Get("Idempotency-Key") }

// setStreamSequence tells the client the stream position of its write.
func setStreamSequence(w http.ResponseWriter, seq uint64) {
	if seq > 0 {
		w.Header().Set("X-Stream-Sequence", fmt.Sprint(seq))
	}
}

// writeError writes err as problem+json (see writeError in error.go).
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	writeError(s.logger, w, r, err)
}
