package raftlease

import (
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

// Input limits, defined once here and enforced by every store.
const (
	// MaxNameLen is the longest lease name, in bytes.
	MaxNameLen = 256
	// MaxHolderLen is the longest holder id, in bytes.
	MaxHolderLen = 256
	// MaxMetadataKeys is the most metadata entries a lease may carry.
	MaxMetadataKeys = 32
	// MaxMetadataKeyLen is the longest metadata key, in bytes.
	MaxMetadataKeyLen = 64
	// MaxMetadataValueLen is the longest metadata value, in bytes.
	MaxMetadataValueLen = 1024
	// MaxMetadataSize bounds the sum of all metadata key and value lengths.
	MaxMetadataSize = 4096
	// MinTTL and MaxTTL bound a lease's TTL. A TTL outside them is refused,
	// never raised or clipped.
	MinTTL = 100 * time.Millisecond
	MaxTTL = 24 * time.Hour
)

// ValidateName checks a lease name: 1 to MaxNameLen bytes of ASCII letters,
// digits and - _ . : / @ = +. The alphabet keeps names safe in URL paths,
// Redis keys (no hash-tag braces) and shell scripts.
func ValidateName(name string) error {
	return validateIdent("name", name, MaxNameLen)
}

// ValidatePrefix checks a list or watch prefix: empty, or a valid name.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return validateIdent("prefix", prefix, MaxNameLen)
}

func validateIdent(field, s string, max int) error {
	if s == "" {
		return &FieldError{Field: field, Reason: "must not be empty"}
	}
	if len(s) > max {
		return &FieldError{Field: field, Reason: fmt.Sprintf("is %d bytes, longer than %d", len(s), max)}
	}
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			return &FieldError{Field: field, Reason: fmt.Sprintf("has byte %q at %d; allowed are letters, digits and -_.:/@=+", s[i], i)}
		}
	}
	return nil
}

func nameByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '_', '.', ':', '/', '@', '=', '+':
		return true
	}
	return false
}

// ValidateHolder checks a holder id: 1 to MaxHolderLen bytes of printable
// UTF-8 without spaces or control characters.
func ValidateHolder(holder string) error {
	return validatePrintable("holder", holder, MaxHolderLen, false)
}

func validatePrintable(field, s string, max int, allowEmpty bool) error {
	if s == "" && !allowEmpty {
		return &FieldError{Field: field, Reason: "must not be empty"}
	}
	if len(s) > max {
		return &FieldError{Field: field, Reason: fmt.Sprintf("is %d bytes, longer than %d", len(s), max)}
	}
	if !utf8.ValidString(s) {
		return &FieldError{Field: field, Reason: "is not valid UTF-8"}
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return &FieldError{Field: field, Reason: fmt.Sprintf("has non-printable or space character %q", r)}
		}
	}
	return nil
}

// ValidateTTL checks that ttl lies within [MinTTL, MaxTTL].
func ValidateTTL(ttl time.Duration) error {
	if ttl < MinTTL || ttl > MaxTTL {
		return &FieldError{Field: "ttl", Reason: fmt.Sprintf("%v is outside [%v, %v]", ttl, MinTTL, MaxTTL)}
	}
	return nil
}

// ValidateMetadata checks metadata against the key, value and size limits.
// Keys follow the name alphabet; values are UTF-8 without control
// characters. A nil or empty map is valid.
func ValidateMetadata(md map[string]string) error {
	if len(md) > MaxMetadataKeys {
		return &FieldError{Field: "metadata", Reason: fmt.Sprintf("has %d keys, more than %d", len(md), MaxMetadataKeys)}
	}
	size := 0
	for k, v := range md {
		if err := validateIdent("metadata key", k, MaxMetadataKeyLen); err != nil {
			return err
		}
		if len(v) > MaxMetadataValueLen {
			return &FieldError{Field: "metadata[" + k + "]", Reason: fmt.Sprintf("value is %d bytes, longer than %d", len(v), MaxMetadataValueLen)}
		}
		if !utf8.ValidString(v) {
			return &FieldError{Field: "metadata[" + k + "]", Reason: "value is not valid UTF-8"}
		}
		for _, r := range v {
			if unicode.IsControl(r) {
				return &FieldError{Field: "metadata[" + k + "]", Reason: fmt.Sprintf("value has control character %q", r)}
			}
		}
		size += len(k) + len(v)
	}
	if size > MaxMetadataSize {
		return &FieldError{Field: "metadata", Reason: fmt.Sprintf("is %d bytes in all, more than %d", size, MaxMetadataSize)}
	}
	return nil
}

// Validate checks an acquire request and reports every problem.
func (r AcquireRequest) Validate() error {
	return errors.Join(ValidateName(r.Name), ValidateHolder(r.Holder), ValidateTTL(r.TTL), ValidateMetadata(r.Metadata))
}

// Validate checks a renew request and reports every problem.
func (r RenewRequest) Validate() error {
	var ttlErr error
	if r.TTL != 0 {
		ttlErr = ValidateTTL(r.TTL)
	}
	return errors.Join(ValidateName(r.Name), ValidateHolder(r.Holder), validateToken(r.Token), ttlErr, ValidateMetadata(r.Metadata))
}

// Validate checks a release request and reports every problem.
func (r ReleaseRequest) Validate() error {
	return errors.Join(ValidateName(r.Name), ValidateHolder(r.Holder), validateToken(r.Token))
}

// Validate checks a watch request.
func (r WatchRequest) Validate() error {
	if r.Name != "" && r.Prefix != "" {
		return &FieldError{Field: "watch", Reason: "name and prefix are exclusive"}
	}
	if r.Name != "" {
		return ValidateName(r.Name)
	}
	return ValidatePrefix(r.Prefix)
}

func validateToken(token uint64) error {
	if token == 0 {
		return &FieldError{Field: "token", Reason: "must be at least 1"}
	}
	return nil
}
