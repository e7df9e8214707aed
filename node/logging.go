package node

import (
	"io"

	"github.com/rs/zerolog"
)

// NewLogger builds the node's zerolog logger for a kong.conf log_level.
// Kong's nginx levels map onto zerolog's: notice is info, crit and above
// are error.
func NewLogger(w io.Writer, level string) zerolog.Logger {
	return zerolog.New(w).Level(zerologLevel(level)).With().Timestamp().Logger()
}

func zerologLevel(level string) zerolog.Level {
	switch level {
	case "debug":
		return zerolog.DebugLevel
	case "info", "notice":
		return zerolog.InfoLevel
	case "warn":
		return zerolog.WarnLevel
	default:
		return zerolog.ErrorLevel
	}
}
