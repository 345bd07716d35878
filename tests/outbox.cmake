# test_outbox fails the coordinator's large message allocations on demand:
# nng_msg_alloc is wrapped (--wrap, GNU ld and lld) in that program only.
target_link_options(test_outbox PRIVATE "LINKER:--wrap=nng_msg_alloc")
