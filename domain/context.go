package domain

import "context"

// correlationKey is the context key of the correlation id.
type correlationKey struct{}

// WithCorrelationID returns a copy of ctx carrying id as the correlation id: the id of the request
// (or job) that everything done under ctx belongs to. The command handler copies it into every
// event it appends, and the projectors log it with each event they apply, so one id follows a
// request from the HTTP access log to the read models. An empty id leaves ctx as it is.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, correlationKey{}, id)
}

// CorrelationID returns the correlation id ctx carries, or "".
func CorrelationID(ctx context.Context) string {
	id, _ := ctx.Value(correlationKey{}).(string)
	return id
}
