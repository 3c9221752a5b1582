module handshaker.test/gopeer

go 1.26
