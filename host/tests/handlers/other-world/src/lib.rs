//! A well-formed component that does not implement the handler world.

wit_bindgen::generate!({
    inline: "package test:other; world other { export run: func() -> u32; }",
    world: "other",
});

struct Other;

impl Guest for Other {
    fn run() -> u32 {
        42
    }
}

export!(Other);
