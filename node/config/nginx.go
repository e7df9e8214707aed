package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kong passes keys named nginx_<block>_<directive> to nginx as they are, so
// their values use nginx's own syntax: sizes like "10m" and times like "60s".

// parseNginxSize reads an nginx size: bytes, or a number with k, m or g
// (case-insensitive), as client_max_body_size takes.
func parseNginxSize(value string) (int64, error) {
	v := strings.ToLower(strings.TrimSpace(value))
	unit := int64(1)
	switch {
	case strings.HasSuffix(v, "k"):
		unit, v = 1<<10, v[:len(v)-1]
	case strings.HasSuffix(v, "m"):
		unit, v = 1<<20, v[:len(v)-1]
	case strings.HasSuffix(v, "g"):
		unit, v = 1<<30, v[:len(v)-1]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/unit {
		return 0, fmt.Errorf("invalid size %q, expected bytes or a number with k, m or g", value)
	}
	return n * unit, nil
}

// nginxTimeUnits are nginx's time suffixes, longest first so "ms" wins over "m".
var nginxTimeUnits = []struct {
	suffix string
	unit   time.Duration
}{
	{"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute},
	{"h", time.Hour}, {"d", 24 * time.Hour},
}

// parseNginxTime reads an nginx time: seconds, or a number with ms, s, m,
// h or d, as client_header_timeout takes.
func parseNginxTime(value string) (time.Duration, error) {
	v := strings.ToLower(strings.TrimSpace(value))
	unit := time.Second
	for _, u := range nginxTimeUnits {
		if strings.HasSuffix(v, u.suffix) {
			unit, v = u.unit, v[:len(v)-len(u.suffix)]
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > int64(1<<62)/int64(unit) {
		return 0, fmt.Errorf("invalid time %q, expected seconds or a number with ms, s, m, h or d", value)
	}
	return time.Duration(n) * unit, nil
}

func nginxSize(field func(*Config) *int64) func(*Config, string) error {
	return func(c *Config, value string) error {
		n, err := parseNginxSize(value)
		if err != nil {
			return err
		}
		*field(c) = n
		return nil
	}
}

// nginxTimeout takes a positive nginx time.
func nginxTimeout(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, value string) error {
		d, err := parseNginxTime(value)
		if err != nil {
			return err
		}
		if d <= 0 {
			return fmt.Errorf("invalid time %q, expected more than 0", value)
		}
		*field(c) = d
		return nil
	}
}

// autoOrCount takes "auto" (stored as 0) or a positive integer.
func autoOrCount(field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, value string) error {
		if value == "auto" {
			*field(c) = 0
			return nil
		}
		n, err := strconv.Atoi(value)
		if err != nil || n < 1 {
			return fmt.Errorf("invalid value %q, expected auto or a positive integer", value)
		}
		*field(c) = n
		return nil
	}
}

// autoString is the reported form of an autoOrCount field.
func autoString(n int) any {
	if n == 0 {
		return "auto"
	}
	return n
}
