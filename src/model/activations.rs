//! Activation buffer sets. A path (decode, prefill) declares its buffers once with
//! [`activations!`]; the same struct then holds their sizes (`Set<u64>`, which the memory plan
//! adds up without a GPU) or the buffers (`Set<GpuBuffer>`, allocated from those sizes), so
//! what is planned and what is allocated cannot differ.

/// Declares `pub struct $name<T>` with one `T` per buffer, `map` (each field with its label)
/// and `total` (the sum of a size set).
macro_rules! activations {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident: $label:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy)]
        pub struct $name<T> {
            $( $(#[$fmeta])* pub $field: T, )*
        }

        impl<T> $name<T> {
            /// Applies `f` to every field with its label.
            fn map<U>(
                self,
                mut f: impl FnMut(&str, T) -> crate::error::Result<U>,
            ) -> crate::error::Result<$name<U>> {
                Ok($name { $( $field: f($label, self.$field)?, )* })
            }
        }

        impl $name<u64> {
            /// Bytes of the whole set.
            pub fn total(self) -> u64 {
                0 $( + self.$field )*
            }

            /// Allocates one storage buffer per field, labelled `{prefix}.{label}`.
            fn allocate(
                self,
                gpu: &crate::gpu::Gpu,
                prefix: &str,
            ) -> crate::error::Result<$name<crate::gpu::GpuBuffer>> {
                self.map(|label, bytes| gpu.storage(&format!("{prefix}.{label}"), bytes))
            }
        }
    };
}

pub(crate) use activations;
