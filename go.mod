module github.com/larder/larder

go 1.26.0

require (
	github.com/klauspost/compress v1.20.3
	github.com/restic/chunker v0.4.0
	golang.org/x/crypto v0.58.0
)

require (
	go.etcd.io/bbolt v1.5.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
