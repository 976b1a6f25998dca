/* The GTCRN network as layers (Rong et al., ICASSP 2024), in the order one frame runs through
   them; sizes are in dz_config.h, weights in the generated dz_weights.c. */
#ifndef DZ_NET_H
#define DZ_NET_H

#include "dz_config.h"
#include "dz_layers.h"

/* Grouped temporal conv block: the first half of the channels goes through SFE + point conv,
   the causal dilated depthwise conv, a second point conv and the temporal recurrent attention
   (TRA: a GRU over the channels' mean power gates them); the halves are then interleaved. */
typedef struct {
    DzConv point1;        /* SFE folded into the point conv: kernel DZ_SFE_KERNEL, PReLU */
    DzDepthConv depth;
    DzConv point2;        /* no activation */
    DzGru tra_gru;
    DzDense tra_fc;       /* sigmoid */
    int cache_offset;     /* floats before this block's frames in DzModel.cache */
} DzGtBlock;

/* Grouped dual-path GRU block on the [DZ_CHANNELS][DZ_WIDTH] plane: a bidirectional grouped GRU
   across the bins of the frame, then a grouped GRU across time (one state per bin), each
   followed by a per-bin dense layer, a LayerNorm over the plane and a residual sum. The GRUs'
   projections are per-bin (kernel 1) grouped convs over the plane. */
typedef struct {
    DzConv intra_in;      /* input projections of both groups and directions */
    DzGru intra;          /* their recurrence, fused: block-diagonal w_hh (no w_ih) */
    DzConv intra_fc;
    DzLayerNorm intra_ln;
    DzConv inter_in;      /* input projections, per group */
    DzConv inter_hh;      /* hidden projections of the carried states, per group */
    DzConv inter_fc;
    DzLayerNorm inter_ln;
} DzDpBlock;

typedef struct {
    DzErb erb;
    DzConv enc[2];                /* strided frequency convs, PReLU */
    DzGtBlock gt[2 * DZ_N_DIL];   /* encoder blocks, then decoder blocks */
    DzDpBlock dp[DZ_N_DP];
    DzConv dec[2];                /* transposed frequency convs: PReLU, then tanh (the mask) */
} DzNetwork;

extern const DzNetwork dz_network;

#endif
