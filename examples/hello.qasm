# hello.qasm: every QPU writes elem_num * 2 + its QPU number to a buffer, 16 words per QPU.
# Uniforms: 0 = buffer bus address.
.set ra_addr, ra0

        mov r0, unif                        # buffer address
        mov r1, qpu_num                     # qpu_num and a small immediate both need the B port:
        shl r1, r1, 6                       # 64 bytes per QPU
        add ra_addr, r0, r1
        shl r2, elem_num, 1
        add r2, r2, qpu_num

        mov r3, qpu_num                     # each QPU uses its own VPM row
        mov r0, vpm_setup(1, 1, h32(0))     # generic VPM write, 32-bit, horizontal
        add vw_setup, r0, r3                # ... at row qpu_num
        mov vpm, r2
        shl r1, r3, 7                       # VDW VPM base Y (bits 13..7) = qpu_num
        mov r0, vdw_setup_0(1, 16, dma_h32(0, 0))
        mov -, mutex                        # one DMA store at a time
        add vw_setup, r0, r1
        mov vw_addr, ra_addr                # start the DMA store
        mov -, vw_wait                      # wait for it to finish
        mov mutex, 0                        # release

        mov irq, 1                          # tell the host
        nop; nop; thrend
        nop
        nop
