/** Tensors, devices, backends and the MoE operators. */
package dev.panamoe.ops;
