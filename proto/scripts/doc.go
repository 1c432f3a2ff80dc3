// Package scripts has no code of its own: it holds the proto module's shell scripts, and its
// tests run them (buf-breaking.sh's choice of the base to compare against).
package scripts
