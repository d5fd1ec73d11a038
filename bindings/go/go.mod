module example.invalid/fasten/bindings/go

go 1.21
