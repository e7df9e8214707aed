package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kong passes keys named nginx_<block>_<directive> to nginx as they are, so
// their values use nginx's own syntax: sizes like "10m" and times like "60s".

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
		n, err := ParseNginxSize(value)
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

// nginxSizeLimit takes an nginx size but not 0, nginx's "no limit":
// Grapevine buffers Admin API bodies in memory, so it refuses 0 rather
// than let one request take unbounded memory.
func nginxSizeLimit(field func(*Config) *int64) func(*Config, string) error {
	return func(c *Config, value string) error {
		n, err := ParseNginxSize(value)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("0 (no limit) is not supported: Admin API bodies are held in memory; give a size such as 10m")
		}
		*field(c) = n
		return nil
	}
}

// ParseNginxSize reads "10m", "512k", "1g" or plain bytes as nginx does.
func ParseNginxSize(value string) (int64, error) {
	bad := fmt.Errorf("invalid size %q, expected bytes or a number with k, m or g (e.g. 10m)", value)
	unit := int64(1)
	digits := value
	if value != "" {
		switch value[len(value)-1] {
		case 'k', 'K':
			unit, digits = 1<<10, value[:len(value)-1]
		case 'm', 'M':
			unit, digits = 1<<20, value[:len(value)-1]
		case 'g', 'G':
			unit, digits = 1<<30, value[:len(value)-1]
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 0 || digits[0] == '+' || n > (1<<62)/unit {
		return 0, bad
	}
	return n * unit, nil
}

// FormatNginxSize writes n in the largest unit that divides it, as Kong
// reports such keys ("10m").
func FormatNginxSize(n int64) string {
	switch {
	case n != 0 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "g"
	case n != 0 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "m"
	case n != 0 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "k"
	}
	return strconv.FormatInt(n, 10)
}

// headerBuffers takes nginx's large_client_header_buffers: "number size",
// such as "4 8k"; all of them together may hold at most 64 KiB.
func headerBuffers(field func(*Config) *[2]int64) func(*Config, string) error {
	return func(c *Config, value string) error {
		count, size, ok := strings.Cut(strings.TrimSpace(value), " ")
		n, err := strconv.ParseInt(count, 10, 64)
		if !ok || err != nil || n < 1 {
			return fmt.Errorf("invalid value %q, expected a number of buffers and a size, such as \"4 8k\"", value)
		}
		bytes, err := ParseNginxSize(strings.TrimSpace(size))
		if err != nil || bytes < 1<<10 || n*bytes > 64<<10 {
			return fmt.Errorf("invalid value %q, expected buffers of at least 1k and at most 64k in all", value)
		}
		*field(c) = [2]int64{n, bytes}
		return nil
	}
}
