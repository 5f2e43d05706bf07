pub(crate) mod counting_alloc;
