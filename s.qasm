nop
  shl r0, r1, 99
