package resolvers

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/wedsync/crmhub/db"
)

// The codes of extensions.code, as CONTRACT.md lists them.
const (
	CodeUnauthenticated = "UNAUTHENTICATED"
	CodeForbidden       = "FORBIDDEN"
	CodeNotFound        = "NOT_FOUND"
	CodeBadUserInput    = "BAD_USER_INPUT"
	CodeRateLimited     = "RATE_LIMITED"
	CodeComplexity      = "COMPLEXITY_LIMIT_EXCEEDED"
	CodeDepth           = "DEPTH_LIMIT_EXCEEDED"
	CodeInternal        = "INTERNAL"
)

// Error is an error meant for the client: its message is safe to show and
// its code goes into extensions.code.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

func errUnauthenticated() error {
	return &Error{Code: CodeUnauthenticated, Message: "a valid API token is required: send Authorization: Bearer chub_…"}
}

func errForbidden(what string) error {
	return &Error{Code: CodeForbidden, Message: "your role may not " + what}
}

func errNotFound() error { return &Error{Code: CodeNotFound, Message: "not found"} }

func errBadInput(msg string) error { return &Error{Code: CodeBadUserInput, Message: msg} }

// ErrorPresenter turns every error into a GraphQL error with a code from
// CONTRACT.md. Errors meant for the client keep their message; the rest are
// logged with the request's id and answered with a bare INTERNAL, so no
// internal detail (SQL, hosts, credentials) leaves the server.
func ErrorPresenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := graphql.DefaultErrorPresenter(ctx, err)
		var pub *Error
		switch {
		case errors.As(err, &pub):
			setCode(gqlErr, pub.Code)
			gqlErr.Message = pub.Message
		case errors.Is(err, db.ErrNotFound):
			setCode(gqlErr, CodeNotFound)
			gqlErr.Message = "not found"
		case errors.Is(err, context.DeadlineExceeded):
			setCode(gqlErr, CodeInternal)
			gqlErr.Message = "the request took too long"
		case hasCode(gqlErr) || gqlErr.Err == nil:
			// gqlgen's own errors (an unreadable body, a query that does not
			// parse or validate, a variable of the wrong type) carry no Go
			// error inside: the message is about the request itself and safe
			// to show, shortened since some echo the body.
			normaliseCode(gqlErr)
			gqlErr.Message = truncate(gqlErr.Message, 300)
		default:
			log.ErrorContext(ctx, "resolver error", "err", err, "path", gqlErr.Path.String())
			setCode(gqlErr, CodeInternal)
			gqlErr.Message = "internal error"
		}
		return gqlErr
	}
}

func hasCode(e *gqlerror.Error) bool {
	_, ok := e.Extensions["code"]
	return ok || e.Rule != ""
}

// normaliseCode maps gqlgen's own codes onto the contract's: a query that
// does not parse or validate is bad user input.
func normaliseCode(e *gqlerror.Error) {
	code, _ := e.Extensions["code"].(string)
	switch code {
	case errcode.ParseFailed, errcode.ValidationFailed, "":
		setCode(e, CodeBadUserInput)
	}
}

func setCode(e *gqlerror.Error, code string) {
	if e.Extensions == nil {
		e.Extensions = map[string]any{}
	}
	e.Extensions["code"] = code
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
