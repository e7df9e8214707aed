package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/store"
	"github.com/grapevine-gw/grapevine/store/memstore"
)

const contentTypeJSON = "application/json; charset=utf-8"

// httpError is a plain {"message": …} answer with a status.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

var (
	errNotFound         = &httpError{http.StatusNotFound, "Not found"}
	errMethodNotAllowed = &httpError{http.StatusMethodNotAllowed, "Method not allowed"}
	// errPayloadTooLarge carries Kong's text for 413 (kong/error_handlers.lua).
	errPayloadTooLarge = &httpError{http.StatusRequestEntityTooLarge, "Payload too large"}
)

// errorResponse maps every error the handlers meet to Kong's status and
// body. It is the only place that decides an error's HTTP status.
func errorResponse(err error) (int, any) {
	var he *httpError
	var ke *entity.Error
	var ue *store.UniqueError
	var pe *store.PrimaryKeyError
	var fe *store.ForeignKeyError
	var re *store.ReferencedError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, message(errPayloadTooLarge.msg)
	case errors.As(err, &he):
		return he.status, message(he.msg)
	case errors.Is(err, ErrNodeNotFound):
		return http.StatusNotFound, message(err.Error())
	case errors.Is(err, ErrNodeNotFailed), errors.Is(err, ErrGossipOff):
		return http.StatusBadRequest, message(err.Error())
	case errors.As(err, &ke):
		return entityStatus(ke.Code), ke
	case errors.Is(err, entity.ErrUnsupportedContentType):
		return http.StatusUnsupportedMediaType, message("Unsupported Media Type")
	case errors.Is(err, entity.ErrMalformedJSON):
		return http.StatusBadRequest, message("Cannot parse JSON body")
	case errors.Is(err, entity.ErrMalformedForm):
		return http.StatusBadRequest, message("Cannot parse form body")
	case errors.Is(err, entity.ErrFormTooDeep):
		return http.StatusBadRequest, message(fmt.Sprintf("Cannot parse form body: a key nests deeper than %d levels", entity.MaxNesting))
	case errors.Is(err, entity.ErrTooManyArguments):
		return http.StatusBadRequest, message("Too many arguments")
	case errors.Is(err, memstore.ErrReadOnly):
		return http.StatusMethodNotAllowed, entity.OperationUnsupported(err.Error())
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, message("database unavailable")
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, message("Not found")
	case errors.As(err, &ue) && ue.Scope != "":
		return http.StatusConflict, entity.ScopedUniqueViolation(ue.Field, ue.Value, ue.Scope, ue.ScopeID)
	case errors.As(err, &ue):
		return http.StatusConflict, uniqueViolation(ue)
	case errors.As(err, &pe):
		return http.StatusBadRequest, entity.PrimaryKeyViolation(pe.ID)
	case errors.As(err, &fe):
		return http.StatusBadRequest, entity.ForeignKeyViolation(fe.Field, fe.RefTable, fe.ID)
	case errors.As(err, &re):
		return http.StatusBadRequest, entity.ReferencedBy(re.Table, re.By)
	}
	return http.StatusInternalServerError, message("An unexpected error occurred")
}

// uniqueViolation is Kong's code 5 body; a composite cache key names the
// values of each of its fields, read from the document being written.
func uniqueViolation(ue *store.UniqueError) *entity.Error {
	if ue.Field == "cache_key" {
		if k, ok := entity.KindByName(ue.Table); ok {
			if doc, err := decodeDoc(ue.Doc); err == nil {
				return entity.CacheKeyViolation(k.Schema, doc)
			}
		}
	}
	return entity.UniqueViolation(ue.Field, ue.Value)
}

func entityStatus(c entity.Code) int {
	switch c {
	case entity.CodeUniqueViolation:
		return http.StatusConflict
	case entity.CodeNotFound:
		return http.StatusNotFound
	case entity.CodeOperationUnsupported:
		return http.StatusMethodNotAllowed
	case entity.CodeDatabaseError:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

func message(msg string) map[string]string { return map[string]string{"message": msg} }

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		// The client went away (nginx's 499): nobody reads an answer, and
		// nothing failed that an operator must act on.
		s.log.Debug().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("admin client closed the request")
		return
	}
	status, body := errorResponse(err)
	if status >= 500 {
		s.log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Int("status", status).Msg("admin request failed")
	}
	writeJSON(w, status, body)
}

func writeMessage(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, message(msg))
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"message":"An unexpected error occurred"}`)
	}
	w.Header().Set("Content-Type", contentTypeJSON)
	w.WriteHeader(status)
	w.Write(b)
}

func writeNoContent(w http.ResponseWriter) {
	w.Header().Set("Content-Type", contentTypeJSON)
	w.WriteHeader(http.StatusNoContent)
}
