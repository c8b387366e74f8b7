"""vmafx scorer plugin: ffmpeg's own xpsnr, psnr, ssim, vif and msad filters."""
