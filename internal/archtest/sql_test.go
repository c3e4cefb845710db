package archtest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The SQL rule: no SQL text is assembled from values. Statements are constants with $n
// parameters; the only pieces that may be joined into SQL are constants, identifiers quoted by
// pgx.Identifier{…}.Sanitize(), placeholders ("$" + strconv.Itoa(n)) and numbers, and values
// built only from those (through variables, helper functions and their parameters, slices joined
// with strings.Join). The rule reads the Go source of the whole module (tests excluded) with
// go/ast, finds every place SQL is assembled — a + concatenation or fmt.Sprintf-style call with a
// piece that looks like SQL, and the SQL argument of every Exec, Query and QueryRow call — and
// follows each piece back to where it comes from. Anything it cannot prove constant fails the
// build, naming the file, line and piece.

// TestNoSQLBuiltFromValues applies the rule to the module.
func TestNoSQLBuiltFromValues(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	m, err := loadModule(root)
	if err != nil {
		t.Fatal(err)
	}
	findings := m.check()
	for _, f := range findings {
		rel := strings.TrimPrefix(f, root+string(filepath.Separator))
		if reason, ok := sqlAllowed(rel); ok {
			t.Logf("allowed (%s): %s", reason, rel)
			continue
		}
		t.Errorf("%s", rel)
	}
	if m.sinks == 0 {
		t.Fatal("the rule found no SQL at all: it is not looking at the right files")
	}
	t.Logf("checked %d places where SQL is assembled or run in %d packages", m.sinks, len(m.pkgs))
}

// sqlAllowedPieces are the reviewed exceptions: file, the piece as reported, and why it is safe.
var sqlAllowedPieces = []struct{ file, piece, why string }{
	{"migrations/migrations.go", `"m.SQL"`, "the embedded migration files (go:embed), part of the binary"},
}

func sqlAllowed(finding string) (string, bool) {
	for _, a := range sqlAllowedPieces {
		if strings.HasPrefix(finding, a.file+":") && strings.HasSuffix(finding, a.piece) {
			return a.why, true
		}
	}
	return "", false
}

// TestSQLRuleCatchesBadExamples shows the rule on snippets: the unsafe ones are caught, the safe
// patterns of this code base are accepted.
func TestSQLRuleCatchesBadExamples(t *testing.T) {
	bad := map[string]string{
		"quote concatenation": `func f(ctx context.Context, db pgx.Tx, v string) {
			db.Exec(ctx, "SELECT * FROM t WHERE x = '" + v + "'")
		}`,
		"Sprintf with %s": `func f(ctx context.Context, db pgx.Tx, userValue string) {
			q := fmt.Sprintf("SELECT * FROM t WHERE name = '%s'", userValue)
			db.Query(ctx, q)
		}`,
		"Sprintf built, never run here": `func f(name string) string {
			return fmt.Sprintf("DELETE FROM t WHERE name = %q", name)
		}`,
		"value through a variable": `func f(ctx context.Context, db pgx.Tx, r *http.Request) {
			where := "status = " + r.URL.Query().Get("status")
			db.Query(ctx, "SELECT id FROM t WHERE " + where)
		}`,
		"value through a helper's parameter": `func run(ctx context.Context, db pgx.Tx, set string) {
			db.Exec(ctx, "UPDATE t SET " + set + " WHERE id = $1", 1)
		}
		func caller(ctx context.Context, db pgx.Tx, r *http.Request) {
			run(ctx, db, "a = 1")
			run(ctx, db, r.FormValue("set"))
		}`,
		"value through an appended slice": `func f(ctx context.Context, db pgx.Tx, cols []string, extra string) {
			where := []string{"tenant_id = $1"}
			where = append(where, extra)
			db.Query(ctx, "SELECT 1 FROM t WHERE " + strings.Join(where, " AND "))
		}`,
		"SQL in a variable run later": `func f(ctx context.Context, db pgx.Tx, table string) {
			sql := "TRUNCATE " + table
			db.Exec(ctx, sql)
		}`,
		"identifier not sanitized": `func f(ctx context.Context, db pgx.Tx, schema string) {
			db.Exec(ctx, "CREATE SCHEMA " + schema)
		}`,
		"+= of a value": `func f(ctx context.Context, db pgx.Tx, order string) {
			q := "SELECT id FROM t"
			q += " ORDER BY " + order
			db.Query(ctx, q)
		}`,
	}
	for name, src := range bad {
		if findings := checkSnippet(t, src); len(findings) == 0 {
			t.Errorf("%s: not caught:\n%s", name, src)
		} else {
			t.Logf("%s: %s", name, findings[0])
		}
	}
	good := map[string]string{
		"parameters": `func f(ctx context.Context, db pgx.Tx, v string) {
			db.Exec(ctx, "SELECT * FROM t WHERE x = $1", v)
		}`,
		"identifiers and constant columns": `const cols = "id, name"
		func f(ctx context.Context, db pgx.Tx, schema string) {
			t := pgx.Identifier{schema, "users"}.Sanitize()
			db.Exec(ctx, "SELECT " + cols + " FROM " + t + " WHERE id = $1", 1)
			db.Exec(ctx, "DROP SCHEMA " + pgx.Identifier{schema}.Sanitize() + " CASCADE")
		}`,
		"placeholders built in a closure": `func f(ctx context.Context, db pgx.Tx, status string, limit int) {
			where := []string{"tenant_id = $1"}
			args := []any{1}
			arg := func(v any) string {
				args = append(args, v)
				return "$" + strconv.Itoa(len(args))
			}
			if status != "" {
				where = append(where, "status = "+arg(status))
			}
			sql := "SELECT id FROM t WHERE " + strings.Join(where, " AND ") + " LIMIT " + arg(limit)
			db.Query(ctx, sql, args...)
		}`,
		"a helper given constants and sanitized names": `func (p *P) update(ctx context.Context, tx pgx.Tx, conv string, set string, args ...any) {
			tx.Exec(ctx, "UPDATE " + conv + " SET " + set + ", version = $3 WHERE id = $1", args...)
		}
		func (p *P) apply(ctx context.Context, tx pgx.Tx, schema string) {
			conv := pgx.Identifier{schema, "conversations"}.Sanitize()
			p.update(ctx, tx, conv, "status = $4", 1)
			p.update(ctx, tx, conv, "assignee_id = NULL")
		}`,
		"numbers formatted in": `func f(ctx context.Context, db pgx.Tx, n int) {
			db.Exec(ctx, fmt.Sprintf("SELECT pg_sleep(%d)", n))
		}`,
		"not SQL": `func f(name string) string { return "Hello, " + name + "!" }`,
	}
	for name, src := range good {
		if findings := checkSnippet(t, src); len(findings) != 0 {
			t.Errorf("%s: flagged %v:\n%s", name, findings, src)
		}
	}
}

// checkSnippet runs the rule on one file of declarations.
func checkSnippet(t *testing.T, decls string) []string {
	t.Helper()
	src := "package p\n\nimport (\n\"context\"\n\"fmt\"\n\"net/http\"\n\"strconv\"\n\"strings\"\n\"github.com/jackc/pgx/v5\"\n)\n\n" + decls
	m := &sqlModule{fset: token.NewFileSet(), pkgs: map[string]*pkg{}, src: map[string][]byte{"snippet.go": []byte(src)}}
	f, err := parser.ParseFile(m.fset, "snippet.go", src, 0)
	if err != nil {
		t.Fatalf("snippet does not parse: %v\n%s", err, src)
	}
	m.add("p", f)
	return m.check()
}

// sqlText recognises a literal that is (part of) an SQL statement.
var sqlText = regexp.MustCompile(`\b(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|GRANT|REVOKE|TRUNCATE|WHERE|VALUES|LISTEN|NOTIFY)\b|` +
	`(?i)\b(select\s+[\w*(].*\bfrom|insert\s+into|delete\s+from|update\s+\S+\s+set|where\s+\w+\s*(=|like\b|in\b))`)

// sqlMethods are the calls whose argument at the given index is SQL text (pgx: ctx first).
var sqlMethods = map[string]int{"Exec": 1, "Query": 1, "QueryRow": 1}

// safeCalls are functions of other packages whose result is safe when the listed arguments are
// (-1: always safe).
var safeCalls = map[string][]int{
	"strconv.Itoa": {-1}, "strconv.FormatInt": {-1}, "strconv.FormatUint": {-1}, "strconv.FormatFloat": {-1},
	"strconv.FormatBool": {-1}, "len": {-1}, "cap": {-1},
	"strings.Join": {0, 1}, "strings.Repeat": {0}, "strings.TrimSpace": {0}, "strings.ToUpper": {0}, "strings.ToLower": {0},
	"strings.TrimSuffix": {0, 1}, "strings.TrimPrefix": {0, 1},
}

type sqlModule struct {
	fset  *token.FileSet
	src   map[string][]byte // by file name
	pkgs  map[string]*pkg   // by directory
	sinks int
}

type pkg struct {
	name   string
	files  []*ast.File
	funcs  map[string][]*ast.FuncDecl
	consts map[string]bool
	vars   map[string]ast.Expr
	// calls are every call of the package (to find a function's callers).
	calls []*ast.CallExpr
}

func loadModule(root string) (*sqlModule, error) {
	m := &sqlModule{fset: token.NewFileSet(), pkgs: map[string]*pkg{}, src: map[string][]byte{}}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "node_modules" || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(m.fset, path, src, 0)
		if err != nil {
			return err
		}
		m.src[path] = src
		m.add(filepath.Dir(path), f)
		return nil
	})
	return m, err
}

func (m *sqlModule) add(dir string, f *ast.File) {
	p := m.pkgs[dir]
	if p == nil {
		p = &pkg{name: f.Name.Name, funcs: map[string][]*ast.FuncDecl{}, consts: map[string]bool{}, vars: map[string]ast.Expr{}}
		m.pkgs[dir] = p
	}
	p.files = append(p.files, f)
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			p.funcs[d.Name.Name] = append(p.funcs[d.Name.Name], d)
		case *ast.GenDecl:
			for _, s := range d.Specs {
				vs, ok := s.(*ast.ValueSpec)
				if !ok {
					continue
				}
				for i, n := range vs.Names {
					if d.Tok == token.CONST {
						p.consts[n.Name] = true
					} else if i < len(vs.Values) && len(vs.Values) == len(vs.Names) {
						p.vars[n.Name] = vs.Values[i]
					}
				}
			}
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		if c, ok := n.(*ast.CallExpr); ok {
			p.calls = append(p.calls, c)
		}
		return true
	})
}

// check returns every finding of the module, sorted.
func (m *sqlModule) check() []string {
	seen := map[string]bool{}
	var out []string
	report := func(pos token.Pos, what string) {
		s := fmt.Sprintf("%s: %s", m.fset.Position(pos), what)
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, p := range m.pkgs {
		for _, f := range p.files {
			for _, d := range f.Decls {
				fn, _ := d.(*ast.FuncDecl)
				if fn == nil || fn.Body == nil {
					continue
				}
				c := &checker{m: m, p: p, fn: fn, visiting: map[string]bool{}}
				ast.Inspect(fn.Body, func(n ast.Node) bool {
					switch n := n.(type) {
					case *ast.BinaryExpr:
						if n.Op != token.ADD {
							return true
						}
						parts := flatten(n)
						if !anySQL(parts) {
							return true
						}
						m.sinks++
						for _, part := range parts {
							if !c.safe(part) {
								report(part.Pos(), "SQL assembled with "+m.render(part)+", which is not a constant, a pgx.Identifier or a placeholder")
							}
						}
						return false
					case *ast.CallExpr:
						if name, ok := selectorName(n.Fun); ok && isSprintf(name) {
							if idx := formatIndex(name); idx < len(n.Args) && isSQLLiteral(n.Args[idx]) {
								m.sinks++
								if !c.safe(n) {
									report(n.Pos(), "SQL assembled with "+name+" from values: "+m.render(n))
								}
								return false
							}
						}
						if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
							if idx, ok := sqlMethods[sel.Sel.Name]; ok && len(n.Args) > idx {
								m.sinks++
								if !c.safe(n.Args[idx]) {
									report(n.Args[idx].Pos(), sel.Sel.Name+" runs SQL assembled from values: "+m.render(n.Args[idx]))
								}
							}
						}
					}
					return true
				})
			}
		}
	}
	sort.Strings(out)
	return out
}

func (m *sqlModule) render(e ast.Expr) string {
	start, end := m.fset.Position(e.Pos()), m.fset.Position(e.End())
	src := m.src[start.Filename]
	if end.Offset > len(src) {
		return fmt.Sprintf("%T", e)
	}
	s := strings.Join(strings.Fields(string(src[start.Offset:end.Offset])), " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return strconv.Quote(s)
}

// flatten lists the operands of a chain of + (a + b + c → a, b, c).
func flatten(e ast.Expr) []ast.Expr {
	if b, ok := unparen(e).(*ast.BinaryExpr); ok && b.Op == token.ADD {
		return append(flatten(b.X), flatten(b.Y)...)
	}
	return []ast.Expr{e}
}

func unparen(e ast.Expr) ast.Expr {
	for {
		p, ok := e.(*ast.ParenExpr)
		if !ok {
			return e
		}
		e = p.X
	}
}

func anySQL(parts []ast.Expr) bool {
	for _, p := range parts {
		if isSQLLiteral(p) {
			return true
		}
	}
	return false
}

func isSQLLiteral(e ast.Expr) bool {
	lit, ok := unparen(e).(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return false
	}
	s, err := strconv.Unquote(lit.Value)
	return err == nil && sqlText.MatchString(s)
}

// selectorName returns "pkg.Func" for a selector call, "Func" for a plain one.
func selectorName(e ast.Expr) (string, bool) {
	switch f := e.(type) {
	case *ast.SelectorExpr:
		if x, ok := f.X.(*ast.Ident); ok {
			return x.Name + "." + f.Sel.Name, true
		}
	case *ast.Ident:
		return f.Name, true
	}
	return "", false
}

func isSprintf(name string) bool {
	switch name {
	case "fmt.Sprintf", "fmt.Sprint", "fmt.Sprintln", "fmt.Fprintf", "fmt.Appendf":
		return true
	}
	return false
}

// formatIndex is the index of the format (or first) argument of a fmt function.
func formatIndex(name string) int {
	if name == "fmt.Fprintf" || name == "fmt.Appendf" {
		return 1
	}
	return 0
}

// checker proves expressions of one function safe.
type checker struct {
	m        *sqlModule
	p        *pkg
	fn       *ast.FuncDecl
	visiting map[string]bool
}

// in returns a checker for another function of the same package.
func (c *checker) in(fn *ast.FuncDecl) *checker {
	return &checker{m: c.m, p: c.p, fn: fn, visiting: c.visiting}
}

// safe reports whether e is built only from constants, sanitized identifiers, placeholders and
// numbers. Cycles (x = append(x, …)) are assumed safe while they are being proven.
func (c *checker) safe(e ast.Expr) bool {
	switch e := unparen(e).(type) {
	case *ast.BasicLit:
		return true
	case *ast.BinaryExpr:
		if e.Op == token.ADD {
			return c.safe(e.X) && c.safe(e.Y)
		}
		return true // arithmetic and comparisons yield numbers and booleans
	case *ast.Ident:
		return c.safeIdent(e.Name)
	case *ast.SelectorExpr:
		// A constant of another package of the module (migrations.AppRole).
		if x, ok := e.X.(*ast.Ident); ok {
			for _, p := range c.m.pkgs {
				if p.name == x.Name && p.consts[e.Sel.Name] {
					return true
				}
			}
		}
		return false
	case *ast.IndexExpr:
		return c.safe(e.X)
	case *ast.SliceExpr:
		return c.safe(e.X)
	case *ast.CompositeLit:
		for _, el := range e.Elts {
			if kv, ok := el.(*ast.KeyValueExpr); ok {
				el = kv.Value
			}
			if !c.safe(el) {
				return false
			}
		}
		return true
	case *ast.CallExpr:
		return c.safeCall(e)
	}
	return false
}

func (c *checker) safeCall(e *ast.CallExpr) bool {
	// pgx.Identifier{…}.Sanitize(): a quoted identifier, whatever it quotes.
	if sel, ok := e.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Sanitize" && len(e.Args) == 0 && isIdentifierValue(sel.X) {
		return true
	}
	name, _ := selectorName(e.Fun)
	if isSprintf(name) {
		return c.safeSprintf(name, e)
	}
	if name == "append" {
		for _, a := range e.Args {
			if !c.safe(a) {
				return false
			}
		}
		return true
	}
	if args, ok := safeCalls[name]; ok {
		for _, i := range args {
			if i >= 0 && i < len(e.Args) && !c.safe(e.Args[i]) {
				return false
			}
		}
		return true
	}
	// A closure of this function: all its results safe.
	if id, ok := e.Fun.(*ast.Ident); ok {
		if lits := c.funcLits(id.Name); len(lits) > 0 {
			return c.guard("lit:"+id.Name, func() bool {
				for _, lit := range lits {
					if !c.returnsSafe(lit.Body) {
						return false
					}
				}
				return true
			})
		}
	}
	// A function or method of this package: all its results safe.
	var fname string
	switch f := e.Fun.(type) {
	case *ast.Ident:
		fname = f.Name
	case *ast.SelectorExpr:
		fname = f.Sel.Name
	}
	if decls := c.p.funcs[fname]; fname != "" && len(decls) > 0 {
		return c.guard("ret:"+fname, func() bool {
			for _, d := range decls {
				if d.Body == nil || !c.in(d).returnsSafe(d.Body) {
					return false
				}
			}
			return true
		})
	}
	return false
}

// isIdentifierValue reports whether e is a pgx.Identifier value: a pgx.Identifier{…} literal
// or conversion.
func isIdentifierValue(e ast.Expr) bool {
	switch v := unparen(e).(type) {
	case *ast.CompositeLit:
		n, _ := selectorName(v.Type)
		return n == "pgx.Identifier"
	case *ast.CallExpr:
		n, _ := selectorName(v.Fun)
		return n == "pgx.Identifier"
	}
	return false
}

// safeSprintf: the format is safe, and every argument printed with a verb other than a number's
// is safe.
func (c *checker) safeSprintf(name string, e *ast.CallExpr) bool {
	idx := formatIndex(name)
	if idx >= len(e.Args) || !c.safe(e.Args[idx]) {
		return false
	}
	if name == "fmt.Sprint" || name == "fmt.Sprintln" {
		for _, a := range e.Args {
			if !c.safe(a) {
				return false
			}
		}
		return true
	}
	verbs := []byte(nil)
	if lit, ok := unparen(e.Args[idx]).(*ast.BasicLit); ok {
		s, _ := strconv.Unquote(lit.Value)
		verbs = formatVerbs(s)
	}
	for i, a := range e.Args[idx+1:] {
		if i < len(verbs) && strings.IndexByte("dboxXeEfFgGtcU", verbs[i]) >= 0 {
			continue // a number (or a boolean) cannot inject anything
		}
		if !c.safe(a) {
			return false
		}
	}
	return true
}

// formatVerbs lists the verbs of a format string in order.
func formatVerbs(s string) []byte {
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		i++
		for i < len(s) && strings.IndexByte("+-# 0123456789.[]*", s[i]) >= 0 {
			i++
		}
		if i < len(s) && s[i] != '%' {
			out = append(out, s[i])
		}
	}
	return out
}

func (c *checker) guard(key string, f func() bool) bool {
	if c.visiting[key] {
		return true
	}
	c.visiting[key] = true
	defer delete(c.visiting, key)
	return f()
}

// returnsSafe reports whether every return of body (not of closures inside it) gives a safe
// first result.
func (c *checker) returnsSafe(body *ast.BlockStmt) bool {
	ok := true
	ast.Inspect(body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncLit:
			return false
		case *ast.ReturnStmt:
			if len(n.Results) > 0 && !c.safe(n.Results[0]) {
				ok = false
			}
		}
		return ok
	})
	return ok
}

// funcLits returns the function literals assigned to name in this function.
func (c *checker) funcLits(name string) []*ast.FuncLit {
	var out []*ast.FuncLit
	values, _, _ := c.collect(name)
	for _, v := range values {
		if lit, ok := unparen(v).(*ast.FuncLit); ok {
			out = append(out, lit)
		}
	}
	return out
}

// safeIdent proves a name safe: a constant; a local variable all of whose assignments are
// safe; a parameter every caller in the module passes something safe for; a package variable
// with a safe initial value.
func (c *checker) safeIdent(name string) bool {
	switch name {
	case "true", "false", "nil", "iota":
		return true
	}
	key := fmt.Sprintf("%p:%s", c.fn, name)
	return c.guard(key, func() bool {
		if idx, variadic, ok := c.paramIndex(name); ok {
			return c.callersPassSafe(idx, variadic)
		}
		values, ranges, unknown := c.collect(name)
		if unknown {
			return false
		}
		if len(values) == 0 && len(ranges) == 0 {
			if c.declaredWithoutValue(name) {
				return true
			}
			if c.p.consts[name] {
				return true
			}
			if v, ok := c.p.vars[name]; ok {
				return c.safe(v)
			}
			return false
		}
		for _, v := range values {
			if _, isLit := unparen(v).(*ast.FuncLit); isLit {
				continue
			}
			if !c.safe(v) {
				return false
			}
		}
		for _, r := range ranges {
			if !c.safe(r) {
				return false
			}
		}
		return true
	})
}

// paramIndex finds name among the function's parameters (receiver excluded).
func (c *checker) paramIndex(name string) (idx int, variadic bool, ok bool) {
	i := 0
	for _, field := range c.fn.Type.Params.List {
		_, isVariadic := field.Type.(*ast.Ellipsis)
		if len(field.Names) == 0 {
			i++
			continue
		}
		for _, n := range field.Names {
			if n.Name == name {
				return i, isVariadic, true
			}
			i++
		}
	}
	return 0, false, false
}

// callersPassSafe checks the argument at idx of every call of this function in the package (and,
// for an exported name, in the module). A function no one calls directly proves nothing.
func (c *checker) callersPassSafe(idx int, variadic bool) bool {
	name := c.fn.Name.Name
	method := c.fn.Recv != nil
	found := false
	for _, p := range c.m.pkgs {
		if p != c.p && !ast.IsExported(name) {
			continue
		}
		for _, call := range p.calls {
			switch f := call.Fun.(type) {
			case *ast.Ident:
				if method || p != c.p || f.Name != name {
					continue
				}
			case *ast.SelectorExpr:
				if f.Sel.Name != name {
					continue
				}
				if !method && p == c.p {
					continue
				}
			default:
				continue
			}
			if !c.arityMatches(call, variadic) {
				continue // a method of the same name on another type
			}
			found = true
			caller := c.m.enclosing(p, call)
			if caller == nil {
				return false
			}
			args := call.Args
			if variadic {
				for _, a := range args[min(idx, len(args)):] {
					if !caller.safe(a) {
						return false
					}
				}
				continue
			}
			if idx >= len(args) || !caller.safe(args[idx]) {
				return false
			}
		}
	}
	return found
}

// arityMatches reports whether call passes as many arguments as the function takes (at least as
// many as its fixed ones when it is variadic).
func (c *checker) arityMatches(call *ast.CallExpr, variadic bool) bool {
	n, hasVariadic := 0, false
	for _, field := range c.fn.Type.Params.List {
		if _, ok := field.Type.(*ast.Ellipsis); ok {
			hasVariadic = true
			continue
		}
		n += max(len(field.Names), 1)
	}
	_ = variadic
	if hasVariadic {
		return len(call.Args) >= n
	}
	return len(call.Args) == n || (call.Ellipsis.IsValid() && len(call.Args) <= n)
}

// enclosing returns a checker for the function declaration containing call.
func (m *sqlModule) enclosing(p *pkg, call *ast.CallExpr) *checker {
	for _, f := range p.files {
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if ok && fn.Body != nil && fn.Pos() <= call.Pos() && call.End() <= fn.End() {
				return &checker{m: m, p: p, fn: fn, visiting: map[string]bool{}}
			}
		}
	}
	return nil
}

// collect finds every value assigned to name in the function (closures included): the right
// sides of := and = (x += y counts y), var declarations, and range expressions. unknown is
// set when name is assigned in a way the rule cannot follow (several results of one call, a
// closure parameter).
func (c *checker) collect(name string) (values, ranges []ast.Expr, unknown bool) {
	ast.Inspect(c.fn.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			for i, l := range n.Lhs {
				id, ok := l.(*ast.Ident)
				if !ok || id.Name != name {
					continue
				}
				if len(n.Lhs) != len(n.Rhs) {
					unknown = true
					continue
				}
				values = append(values, n.Rhs[i])
			}
		case *ast.ValueSpec:
			for i, id := range n.Names {
				if id.Name == name && i < len(n.Values) {
					if len(n.Values) != len(n.Names) {
						unknown = true
						continue
					}
					values = append(values, n.Values[i])
				}
			}
		case *ast.RangeStmt:
			for _, x := range []ast.Expr{n.Key, n.Value} {
				if id, ok := x.(*ast.Ident); ok && id.Name == name {
					ranges = append(ranges, n.X)
				}
			}
		case *ast.FuncLit:
			for _, field := range n.Type.Params.List {
				for _, id := range field.Names {
					if id.Name == name {
						unknown = true
					}
				}
			}
		}
		return true
	})
	return values, ranges, unknown
}

// declaredWithoutValue reports a `var name T` in the function (its zero value, "" or nil).
func (c *checker) declaredWithoutValue(name string) bool {
	found := false
	ast.Inspect(c.fn.Body, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok && len(vs.Values) == 0 {
			for _, id := range vs.Names {
				if id.Name == name {
					found = true
				}
			}
		}
		return !found
	})
	return found
}
