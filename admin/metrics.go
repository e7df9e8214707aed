package admin

import (
	"bytes"
	"net/http"
)

// handleMetrics is GET /metrics, the prometheus plugin's endpoint
// (kong/plugins/prometheus/api.lua): the node's metrics in Prometheus's
// text format, written by Config.Metrics.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	if err := s.cfg.Metrics(r.Context(), &buf); err != nil {
		s.log.Error().Err(err).Msg("writing metrics")
		writeMessage(w, http.StatusInternalServerError, "An unexpected error occurred")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}
