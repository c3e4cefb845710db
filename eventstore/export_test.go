package eventstore

// VersionLess reports whether server version a is older than b, for the tests.
func VersionLess(a, b string) (bool, error) {
	va, err := parseVersion(a)
	if err != nil {
		return false, err
	}
	vb, err := parseVersion(b)
	if err != nil {
		return false, err
	}
	return va.less(vb), nil
}
