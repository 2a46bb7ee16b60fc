package redisbridge

import (
	"strings"
)

// keys is the store's key layout under its prefix P:
//
//	P{<name>}:lease    hash: the live lease, expiring at its deadline (PEXPIREAT)
//	P{<name>}:shadow   hash: a copy of the lease without expiry, kept until its
//	                   end (release or expiry) is recorded
//	P{<name>}:token    string: the name's fencing counter, never deleted
//	Prevision          string: the store revision counter
//	Pnames             zset (score 0): names with a shadow, for List
//	Pdeadlines         zset (score = deadline, ms on the server clock), for expiry
//	Pevents            stream: recent changes; also the pub/sub channel that
//	                   announces them
//
// Names cannot contain braces (raftlease.ValidateName), so on a plain prefix
// the braces around the name are the key's hash tag and a name's three keys
// share one slot. A store's revision counter is shared by all names, so on
// Redis Cluster the prefix itself must carry a hash tag ("{raftlease}:"),
// which puts every key of the store in one slot; see docs/redis.md.
type keys struct {
	prefix    string
	revision  string
	names     string
	deadlines string
	events    string
}

func newKeys(prefix string) keys {
	return keys{
		prefix:    prefix,
		revision:  prefix + "revision",
		names:     prefix + "names",
		deadlines: prefix + "deadlines",
		events:    prefix + "events",
	}
}

const (
	leaseSuffix  = "}:lease"
	shadowSuffix = "}:shadow"
	tokenSuffix  = "}:token"
)

func (k keys) lease(name string) string  { return k.prefix + "{" + name + leaseSuffix }
func (k keys) shadow(name string) string { return k.prefix + "{" + name + shadowSuffix }
func (k keys) token(name string) string  { return k.prefix + "{" + name + tokenSuffix }

// write returns the keys of a mutating script for name, in the order the
// scripts expect (see scripts.go).
func (k keys) write(name string) []string {
	return []string{k.lease(name), k.shadow(name), k.token(name), k.revision, k.names, k.deadlines, k.events}
}

// nameOf returns the lease name in a key of the given suffix, or false.
func (k keys) nameOf(key, suffix string) (string, bool) {
	if !strings.HasPrefix(key, k.prefix+"{") || !strings.HasSuffix(key, suffix) {
		return "", false
	}
	name := key[len(k.prefix)+1 : len(key)-len(suffix)]
	return name, name != ""
}

// pattern returns a SCAN MATCH pattern for every key of the given suffix.
func (k keys) pattern(suffix string) string {
	return escapeGlob(k.prefix+"{") + "*" + escapeGlob(suffix)
}

// escapeGlob escapes the characters Redis glob patterns treat specially, so
// that s matches only itself.
func escapeGlob(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '*', '?', '[', ']', '\\', '^', '-':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// hasHashTag reports whether s holds a Redis Cluster hash tag: a '{'
// followed, after at least one byte, by a '}'.
func hasHashTag(s string) bool {
	open := strings.IndexByte(s, '{')
	if open < 0 {
		return false
	}
	end := strings.IndexByte(s[open+1:], '}')
	return end > 0
}
