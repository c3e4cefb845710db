package httpapi

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"go.yaml.in/yaml/v3"
)

//go:embed api/openapi.yaml
var openapiYAML []byte

// publicRole marks operations that need no credential.
const publicRole = "public"

// operation is one method on one path of the OpenAPI document.
type operation struct {
	ID      string
	Method  string
	Path    string // the OpenAPI path template, also the chi route pattern
	Roles   map[string]bool
	HasBody bool
	// Multipart is set when the body is multipart/form-data (an upload) rather than JSON.
	Multipart bool
	pathItem  *v3.PathItem
	// check is the operation's request check compiled from the document (precompiled.go); nil
	// when every request goes to the validator.
	check *requestCheck
}

// Public reports whether the operation needs no credential.
func (o *operation) Public() bool { return o.Roles[publicRole] }

// contract is the parsed OpenAPI document: the source of truth for routes, roles and validation.
type contract struct {
	json      []byte
	ops       map[string]*operation // "METHOD /path"
	validator validator.Validator
}

// loadContract parses the embedded OpenAPI document, checks that every operation declares its
// roles, and builds the request validator.
func loadContract() (*contract, error) {
	var raw map[string]any
	if err := yaml.Unmarshal(openapiYAML, &raw); err != nil {
		return nil, fmt.Errorf("openapi: parse: %w", err)
	}
	js, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("openapi: render JSON: %w", err)
	}
	doc, err := libopenapi.NewDocument(js)
	if err != nil {
		return nil, fmt.Errorf("openapi: load: %w", err)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		return nil, fmt.Errorf("openapi: build model: %w", err)
	}
	c := &contract{json: js, ops: map[string]*operation{}}
	var errs []error
	paths, _ := raw["paths"].(map[string]any)
	for path, item := range paths {
		methods, _ := item.(map[string]any)
		pathItem, ok := model.Model.Paths.PathItems.Get(path)
		if !ok {
			errs = append(errs, fmt.Errorf("openapi: path %s missing from model", path))
			continue
		}
		for method, def := range methods {
			m := strings.ToUpper(method)
			if !isHTTPMethod(m) {
				continue
			}
			spec, _ := def.(map[string]any)
			op := &operation{Method: m, Path: path, Roles: map[string]bool{}, pathItem: pathItem}
			op.ID, _ = spec["operationId"].(string)
			if rb, ok := spec["requestBody"].(map[string]any); ok {
				op.HasBody = true
				content, _ := rb["content"].(map[string]any)
				_, op.Multipart = content["multipart/form-data"]
			}
			roles, _ := spec["x-roles"].([]any)
			for _, r := range roles {
				if s, ok := r.(string); ok {
					op.Roles[s] = true
				}
			}
			if op.ID == "" || len(op.Roles) == 0 {
				errs = append(errs, fmt.Errorf("openapi: %s %s needs an operationId and x-roles", m, path))
			}
			c.ops[m+" "+path] = op
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// The regex cache keeps the validator from compiling a path template's regular expression on
	// every request (it was the largest single cost of a message send).
	opts := []config.Option{config.WithoutSecurityValidation(), config.WithFormatAssertions(), config.WithRegexCache(&sync.Map{})}
	c.validator = validator.NewValidatorFromV3Model(&model.Model, opts...)
	// Each operation's request check is compiled with the validator's options, so that its
	// schemas are the ones the validator would compile (see requestCheck).
	checkOpts := config.NewValidationOptions(opts...)
	for _, op := range c.ops {
		if !op.Multipart {
			op.check = compileRequestCheck(&model.Model, op.Path, op.Method, op.pathItem, checkOpts)
		}
	}
	return c, nil
}

func isHTTPMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// operation returns the operation for a method and route pattern.
func (c *contract) operation(method, pattern string) (*operation, bool) {
	op, ok := c.ops[method+" "+pattern]
	return op, ok
}

// keys lists every "METHOD /path" of the document, sorted.
func (c *contract) keys() []string {
	out := make([]string, 0, len(c.ops))
	for k := range c.ops {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
